import pytest

from customers.models import ConsentRecord, CustomerConsent
from customers.services import (
    DoubleOptInError,
    confirm_double_opt_in,
    record_consent,
    request_double_opt_in,
)
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db


def test_double_opt_in_round_trip():
    customer = CustomerFactory()
    token = request_double_opt_in(customer=customer, source="signup_form", ip="127.0.0.1")
    assert CustomerConsent.objects.get(customer=customer).status == "pending"
    record = confirm_double_opt_in(token=token, ip="127.0.0.1")
    assert record.action == "confirmed"
    assert CustomerConsent.objects.get(customer=customer).status == "granted"
    assert confirm_double_opt_in(token=token).pk == record.pk
    assert ConsentRecord.objects.filter(customer=customer).count() == 2


def test_tampered_and_stale_tokens_are_refused():
    customer = CustomerFactory()
    token = request_double_opt_in(customer=customer, source="form")
    with pytest.raises(DoubleOptInError):
        confirm_double_opt_in(token=token[:-2] + "xx")
    record_consent(customer=customer, channel="email", action="withdrawn", source="unsubscribe_link")
    with pytest.raises(DoubleOptInError, match="withdrawn"):
        confirm_double_opt_in(token=token)
    assert CustomerConsent.objects.get(customer=customer).status == "withdrawn"
