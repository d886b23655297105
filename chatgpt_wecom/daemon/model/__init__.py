"""The model: the openai-SDK client (chat, stream, images, speech, vision), its errors and its HTTP layer."""
