"""gunicorn settings: `gunicorn -c config/gunicorn.py config.wsgi`.

The access log (off unless `--access-logfile` is given) leaves out what can carry personal data:
the query string (`%(q)s`, and the request line `%(r)s` that contains it), the referrer, the
user agent and the client address. It keeps time, method, path, status, size and duration.
"""

access_log_format = '%(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
