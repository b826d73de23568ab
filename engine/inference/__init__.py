"""Running the model: manifests and their sha256, the OpenVINO runtime, the session (one SessionConfig)
and its shared registry, the embedding cache, the predictor, frames and preprocessing, model families and
their prompts, 3D propagation. Knows nothing about files.
"""
