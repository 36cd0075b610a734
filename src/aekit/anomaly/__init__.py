"""Anomaly detection (``aekit score``): a run trained on normal images scores new ones.

``methods`` (the scores: recon, ssim, latent-knn, combined, and their maps), ``detector`` (a
run's scorer, calibrated on its held-out normal images and kept in the run), ``scoring`` (a
split or files scored, with AUROC, AUPR and F1), ``plots`` (ROC, histogram, heatmaps).
"""
