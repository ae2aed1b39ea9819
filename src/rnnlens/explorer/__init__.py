"""The explorer: an offline web app to look inside a trained run (``rnnlens serve``; see docs/explorer.md).

Modules: ``cache`` (the precomputed capture and summaries under ``RUN/explorer-<source>``), ``data`` (loading it
and answering queries), ``search`` (LSTMVis pattern search), ``server`` (HTTP and request validation),
``assets`` (the browser app as strings).
"""
