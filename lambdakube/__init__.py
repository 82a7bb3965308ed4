"""lambdakube: AWS-Lambda-style function scaling for Kubernetes (shared API and CLI)."""

__version__ = "0.1.0"
