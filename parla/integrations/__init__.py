"""Parla inside other frameworks: ``parla.integrations.pipecat`` (a Pipecat video service, extra ``[pipecat]``)."""
