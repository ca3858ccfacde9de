//! primer: pre-train, then fine-tune transformer language models on a CPU engine of our own.
