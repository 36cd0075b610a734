"""Photo denoising (``aekit denoise``, ``aekit eval --full-size``): photos denoised at their own
size in exact overlapping tiles, with seeded synthetic noise (``fullsize``). Named ``denoising``
so that ``aekit.denoise``, the function, keeps its name."""
