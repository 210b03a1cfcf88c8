"""XrayQwen2VL: data, configs and evaluation for fine-tuning Qwen2-VL on chest X-ray reports."""

__version__ = "0.1.0"
