"""Looking inside a trained model: ``generate`` (a vae's prior sampled, and paths between two
images' codes) and ``units`` (what each unit of a code stands for)."""
