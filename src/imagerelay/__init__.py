"""imagerelay: one interface to the image APIs of xAI, OpenAI and Replicate."""
