"""Base latent-diffusion models: Stable Diffusion v1-5 from a local folder, or the embedded tiny one."""
