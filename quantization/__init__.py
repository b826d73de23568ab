"""Offline model tooling: PyTorch model definitions, OpenVINO export, NNCF INT8 quantization.

The only place where torch and nncf are imported. Never imported at app run time.
"""
