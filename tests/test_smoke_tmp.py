from django_communication import send, get_messages_for_object
from django_communication.models import MessageTemplate, Message
from django_communication.providers import memory

def test_smoke(comm_config, customer, booking):
    MessageTemplate.objects.create(key="welcome", name="Welcome", email_subject="Hi {{ name }}", email_body_text="Hello {{ name }}", email_body_html="<p>{{ name }}</p>", sms_body="Hi {{ name }}")
    m = send(to=customer, template_key="welcome", context={"name": "<J>"}, related_object=booking)
    assert m.status == "sent", m.error
    assert m.body_html == "<p>&lt;J&gt;</p>" and m.body_text == "Hello <J>"
    m2 = send(to=customer, template_key="welcome", context={"name": "J"}, channel="sms")
    assert m2.to_address == "+447911123456"
    assert len(memory.messages) == 2
    assert list(get_messages_for_object(booking)) == [m]
