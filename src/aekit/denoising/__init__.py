"""Photo denoising (``aekit denoise``, ``aekit eval --full-size``): a model run over a photo of
any size in exact overlapping tiles, with seeded synthetic noise (``fullsize``); a denoiser
applied to photos or batches, and a split of photos scored at full size (``apply``). Named
``denoising`` so that ``aekit.denoise``, the function, keeps its name."""
