"""Media: audio conversion for speech-to-text, image sniffing, and the files users send and the model draws."""
