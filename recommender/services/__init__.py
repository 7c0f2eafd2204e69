"""Writes of the recommender: training and the model registry (``registry``), batch scoring
(``scoring``), incremental refresh (``refresh``) and one-customer serving for the API
(``serving``). The data they learn from is read by ``data``; artifacts live in ``artifacts``.
"""
