"""Search by similarity through the latent space.

``embed`` (a split encoded into an ``Embeddings`` store; ``embed_stream`` for splits larger than
memory; ``encoding`` shared by both), ``stores`` (a store's files, written all or nothing),
``knn`` (exact and FAISS search, nearest or farthest first), ``retrieval`` (precision@k and
mAP@k against pixels and PCA), ``latent_map`` (a store in 2-D: PCA, UMAP, t-SNE).
"""
