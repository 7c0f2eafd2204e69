"""Customer analytics on the database: RFM scores and groups, behavioural clusters, churn and CLV.

The maths lives in `segments.analytics` (no Django); this package feeds it from SQL, writes the
per-customer results into `segments.CustomerFeatures` in bulk, records each run, and serves the
summaries to the API and the admin. It is a small Django app of its own (label
`segment_features`) so that its tasks, admin page and API are discovered like any other app's.
"""
