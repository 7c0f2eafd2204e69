"""The consent ledger with double opt-in and withdrawals, its derived state, push subscriptions
and suppressions."""

from __future__ import annotations

import numpy as np

from core.synthetic.config import (
    BOUNCED_SHARE,
    COMPLAINT_SHARE,
    DOUBLE_OPT_IN_SHARE,
    EMAIL_GRANTED_SHARE,
    EMAIL_PENDING_SHARE,
    EMAIL_WITHDRAWN_SHARE,
    PUSH_GRANTED_SHARE,
    PUSH_WITHDRAWN_SHARE,
    SMS_GRANTED_SHARE,
    SMS_WITHDRAWN_SHARE,
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_SECOND,
)
from core.synthetic.tables import _BASE64URL, _HEX, Table, _join, _random_text, _ts


class _ConsentSteps:
    """A batch's consent records and state, push subscriptions and suppressions."""

    def _consent(self) -> tuple[Table, Table, Table, Table]:
        rng, n, end = self.rng, self.n, self.end
        customer_ids = np.arange(self.lo + 1, self.lo + n + 1, dtype=np.int64)
        records: list[tuple] = []  # (customer index, channel, action, source, time, ip or -1)

        def later(after: np.ndarray, mean_us: float) -> np.ndarray:
            return np.minimum(after + (rng.exponential(mean_us, len(after))).astype(np.int64) + 1, end - 1)

        def uniform_after(after: np.ndarray) -> np.ndarray:
            return np.minimum(after + (rng.random(len(after)) * (end - after)).astype(np.int64) + 1, end - 1)

        def add(idx, channel, action, source, times, ips=None):
            count = len(idx)
            records.append(
                (
                    idx,
                    np.full(count, channel, dtype="S8"),
                    np.full(count, action, dtype="S10"),
                    source if isinstance(source, np.ndarray) else np.full(count, source, dtype="S64"),
                    times,
                    np.full(count, -1, dtype=np.int64) if ips is None else ips,
                )
            )

        def test_net_ips(count):
            nets = np.array([0xC0000200, 0xC6336400, 0xCB007100], dtype=np.int64)  # RFC 5737 ranges
            return nets[rng.integers(0, 3, count)] + rng.integers(1, 255, count)

        # Email: granted at signup (double opt-in where customary), some withdrawn, some never confirmed.
        u = rng.random(n)
        granted = np.flatnonzero(u < EMAIL_GRANTED_SHARE)
        pending = np.flatnonzero((u >= EMAIL_GRANTED_SHARE) & (u < EMAIL_GRANTED_SHARE + EMAIL_PENDING_SHARE))
        given_at = np.minimum(self.created + rng.integers(1, 120, n) * US_PER_SECOND, end - 1)
        from_crm = self.existing
        source = np.where(from_crm, b"crm_import", np.where(rng.random(n) < 0.6, b"signup_form", b"checkout"))
        ips = np.where(from_crm, -1, test_net_ips(n))
        double = self.shop._double_opt_in[self.profile] | (rng.random(n) < DOUBLE_OPT_IN_SHARE)
        single = granted[~double[granted] | from_crm[granted]]
        confirmed = granted[double[granted] & ~from_crm[granted]]
        add(single, b"email", b"granted", source[single], given_at[single], ips[single])
        add(confirmed, b"email", b"requested", source[confirmed], given_at[confirmed], ips[confirmed])
        confirmed_at = later(given_at[confirmed], 2 * US_PER_HOUR)
        add(confirmed, b"email", b"confirmed", b"double_opt_in_link", confirmed_at, ips[confirmed])
        add(pending, b"email", b"requested", source[pending], given_at[pending], ips[pending])
        email_final = np.full(n, -1.0)
        email_final[single] = given_at[single]
        email_final[confirmed] = confirmed_at
        withdrawn = granted[rng.random(len(granted)) < EMAIL_WITHDRAWN_SHARE]
        withdrawn_at = uniform_after(email_final[withdrawn].astype(np.int64))
        withdraw_source = np.where(
            rng.random(len(withdrawn)) < 0.8, b"unsubscribe_link", b"preference_centre"
        )
        add(withdrawn, b"email", b"withdrawn", withdraw_source.astype("S64"), withdrawn_at)
        self.email_granted = np.zeros(n, dtype=bool)
        self.email_granted[granted] = True
        self.email_granted[withdrawn] = False

        # Push: from an app prompt, some turned off later. SMS: at checkout, some STOP replies.
        push = np.flatnonzero(rng.random(n) < PUSH_GRANTED_SHARE)
        push_at = np.minimum(
            self.created[push] + (rng.random(len(push)) * 60 * US_PER_DAY).astype(np.int64), end - 1
        )
        push_at = np.maximum(push_at, self.created[push] + 1)
        add(push, b"push", b"granted", b"app_prompt", push_at)
        push_off = rng.random(len(push)) < PUSH_WITHDRAWN_SHARE
        push_off_at = uniform_after(push_at[push_off])
        add(push[push_off], b"push", b"withdrawn", b"app_settings", push_off_at)
        sms = np.flatnonzero(rng.random(n) < SMS_GRANTED_SHARE)
        sms_at = given_at[sms]
        add(sms, b"sms", b"granted", b"checkout", sms_at)
        sms_off = rng.random(len(sms)) < SMS_WITHDRAWN_SHARE
        add(sms[sms_off], b"sms", b"withdrawn", b"sms_stop", uniform_after(sms_at[sms_off]))

        cust = np.concatenate([r[0] for r in records])
        chan = np.concatenate([r[1] for r in records])
        action = np.concatenate([r[2] for r in records])
        src = np.concatenate([r[3] for r in records]).astype("S64")
        when = np.concatenate([r[4] for r in records]).astype(np.int64)
        ip = np.concatenate([r[5] for r in records])
        channel_code = np.searchsorted(np.array([b"email", b"push", b"sms"]), chan)
        order = np.lexsort((when, channel_code, cust))
        cust, chan, action, src, when, ip, channel_code = (
            a[order] for a in (cust, chan, action, src, when, ip, channel_code)
        )
        m = len(cust)
        c = self.counters
        consent_records = Table(
            "consent_records",
            {
                "id": np.arange(c.consent_record + 1, c.consent_record + m + 1, dtype=np.int64),
                "customer_id": customer_ids[cust],
                "channel": chan,
                "action": action,
                "source": src,
                "ip": np.maximum(ip, 0),
                "occurred_at": _ts(when),
                "recorded_at": _ts(np.minimum(when + rng.integers(0, 5, m) * US_PER_SECOND, end - 1)),
                "note": np.full(m, b"", dtype="S1"),
            },
            nulls={"ip": ip < 0},
        )
        c.consent_record += m

        # Current state: the latest decision per customer and channel.
        key = cust * 3 + channel_code
        last = np.flatnonzero(np.r_[key[1:] != key[:-1], True])
        status = np.select(
            [action[last] == b"withdrawn", action[last] == b"requested"],
            [b"withdrawn", b"pending"],
            b"granted",
        )
        s = len(last)
        consents = Table(
            "consents",
            {
                "id": np.arange(c.consent_state + 1, c.consent_state + s + 1, dtype=np.int64),
                "customer_id": customer_ids[cust[last]],
                "channel": chan[last],
                "status": status,
                "source": src[last],
                "changed_at": _ts(when[last]),
            },
        )
        c.consent_state += s
        self.last_consent_change = np.full(n, np.iinfo(np.int64).min)
        np.maximum.at(self.last_consent_change, cust, when)

        # Push subscriptions for everyone who allowed push; inactive once they turned it off.
        k = len(push)
        active = ~push_off
        updated = push_at.copy()
        updated[push_off] = push_off_at
        subscriptions = Table(
            "push_subscriptions",
            {
                "id": np.arange(c.push + 1, c.push + k + 1, dtype=np.int64),
                "customer_id": customer_ids[push],
                "kind": np.full(k, b"webpush", dtype="S7"),
                "endpoint": _join(b"https://push.example.com/send/", _random_text(rng, k, 32, _HEX)),
                "p256dh": _random_text(rng, k, 87, _BASE64URL),
                "auth": _random_text(rng, k, 22, _BASE64URL),
                "token": np.full(k, b"", dtype="S1"),
                "active": active,
                "last_error": np.full(k, b"", dtype="S1"),
                "created_at": _ts(push_at),
                "updated_at": _ts(updated),
            },
        )
        c.push += k

        # A few addresses bounced or complained: on the suppression list (hashed by the loader).
        v = rng.random(n)
        bounced = v < BOUNCED_SHARE
        complained = (v >= BOUNCED_SHARE) & (v < BOUNCED_SHARE + COMPLAINT_SHARE)
        suppressed = np.flatnonzero(bounced | complained)
        q = len(suppressed)
        suppressions = Table(
            "suppressions",
            {
                "id": np.arange(c.suppression + 1, c.suppression + q + 1, dtype=np.int64),
                "channel": np.full(q, b"email", dtype="S5"),
                "address": self.email[suppressed],
                "reason": np.where(bounced[suppressed], b"bounced", b"complaint"),
                "detail": np.full(q, b"synthetic", dtype="S9"),
                "created_at": _ts(uniform_after(self.created[suppressed])),
            },
        )
        c.suppression += q
        return consent_records, consents, subscriptions, suppressions
