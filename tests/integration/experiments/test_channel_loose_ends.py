"""Channel experiments where a marketer meets them: the builder's save, test sends, the report.

Through the real admin (Django's test client) and the API, on PostgreSQL; push goes to the real
local HTTP receiver of the campaign tests. Salts are fixed (dimensions.SALT).
"""

from __future__ import annotations

import pytest

from experiments.models import Experiment
from tests.integration.campaigns import scenario
from tests.integration.campaigns.conftest import push_receiver as push_receiver  # noqa: F401
from tests.integration.experiments import dimensions as d

pytestmark = pytest.mark.django_db

OPEN_RATE_ERROR = "Opens are not tracked for push"


def change_form_data(response) -> dict:
    """What the change page would post back unchanged: every bound field's current value."""
    data = {}

    def add(form):
        for bound in form:
            value = bound.value()
            if value is None or value is False:
                continue
            if isinstance(value, list | tuple):
                data[bound.html_name] = [str(v) for v in value]
            elif value is True:
                data[bound.html_name] = "on"
            else:
                data[bound.html_name] = str(value)

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        add(inline.formset.management_form)
        for form in inline.formset.forms:
            add(form)
    return data


def prefix_of(data: dict, name: str) -> str:
    index = {data[k]: k.split("-")[1] for k in data if k.startswith("variants-") and k.endswith("-name")}
    return f"variants-{index[name]}-"


def experiment_prefix(data: dict) -> str:
    return next(k.rsplit("metric", 1)[0] for k in data if k.endswith("-metric"))


def metric_errors(response) -> list[str]:
    for inline in response.context["inline_admin_formsets"]:
        if inline.formset.model is Experiment:
            return [str(e) for form in inline.formset.forms for e in form.errors.get("metric", [])]
    raise AssertionError("no experiment inline on the page")


# --------------------------------------------------------------------------------------------
# 1. The builder refuses push under an open-rate experiment in the same save


def test_one_save_moving_a_variant_to_push_under_open_rate_gets_a_field_error(client, admin_user):
    client.force_login(admin_user)
    campaign = d.experiment_campaign(scenario.make_customers(2), variants=[{}, {}], metric="open_rate")
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    data = change_form_data(client.get(url))
    b = prefix_of(data, "B")

    data[b + "channel"] = "push"
    refused = client.post(url, data)
    assert refused.status_code == 200
    errors = metric_errors(refused)
    assert len(errors) == 1 and errors[0].startswith(OPEN_RATE_ERROR) and "Variant B" in errors[0]
    assert OPEN_RATE_ERROR in refused.content.decode()
    assert d.variant(campaign, "B").channel == ""  # nothing of the refused save was written

    # Both changed in one save: push for B and click rate for the experiment is fine.
    data[experiment_prefix(data) + "metric"] = "click_rate"
    saved = client.post(url, data)
    assert saved.status_code == 302, metric_errors(saved)
    assert d.variant(campaign, "B").channel == "push"
    assert Experiment.objects.get(campaign=campaign).metric == "click_rate"


def test_the_check_reads_this_saves_channels_not_the_saved_ones(client, admin_user):
    client.force_login(admin_user)
    campaign = d.experiment_campaign(scenario.make_customers(2), variants=[{}, {"channel": "push"}])
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    data = change_form_data(client.get(url))
    b, e = prefix_of(data, "B"), experiment_prefix(data)

    # Open rate while B is saved as push, but B goes back to email in the same save: accepted.
    data.update({b + "channel": "email", e + "metric": "open_rate"})
    saved = client.post(url, data)
    assert saved.status_code == 302, metric_errors(saved)
    assert (d.variant(campaign, "B").channel, Experiment.objects.get(campaign=campaign).metric) == (
        "email",
        "open_rate",
    )

    # The campaign's own channel moved to push: variants without a channel of their own follow it.
    data = change_form_data(client.get(url))
    data.update({"channel": "push", prefix_of(data, "B") + "channel": ""})
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert metric_errors(refused) and "Variants A, B" in metric_errors(refused)[0]
    campaign.refresh_from_db()
    assert campaign.channel == "email"

    # A variant deleted in the same save is not checked.
    data = change_form_data(client.get(url))
    b = prefix_of(data, "B")
    data.update({b + "channel": "push", b + "DELETE": "on"})
    saved = client.post(url, data)
    assert saved.status_code == 302, metric_errors(saved)
    assert list(campaign.variants.values_list("name", flat=True)) == ["A"]
