"""The attribute-classifier protocol (ResNet18 from scratch) that the CLS attack and calibrations use."""
