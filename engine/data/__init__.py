"""What an image and a label map are: the Image type and its geometry, display orientation, intensity
windows, label maps, segments and their colours, mask outlines. numpy only (no file formats, no model).
"""
