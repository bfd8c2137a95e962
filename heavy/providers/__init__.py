"""Providers: one class per wire format, plus wrappers that add policies around any provider."""

from .base import Completion, CompletionRequest, Delta, Provider

__all__ = ["Completion", "CompletionRequest", "Delta", "Provider"]
