"""`make demo`: the product end to end on the embedded default (SQLite, eager tasks, mail to files).

Each stage calls the product's own services, in the order a shop would use them:

1. `data`        import the retail sample with demo contacts; a loyalty program that awards points
2. `recommend`   evaluate every recommender on a temporal split; train the chosen one, score everyone
3. `analytics`   RFM groups, clusters, CLV (on a synthetic year: two weeks are too short) and segments
4. `campaign`    an A/B email campaign through the real launch and send path, mail to out/mail/
5. `engagement`  a seeded behaviour model opens and clicks through the tracking endpoints and orders
6. `analysis`    the test analysed with experiments.stats: effect, interval, chance to win, SRM
7. `report`      out/report.html (plots inline) and out/demo-report.json (counts, metrics, result)

The JSON holds only numbers that depend on the data and the seed, never on the clock, so a
second run (which starts from an empty database) produces the same file byte for byte.
"""
