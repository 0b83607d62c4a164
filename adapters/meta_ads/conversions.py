"""Meta Conversions API: the ConversionSink side of :class:`MetaAdsSource`.

``POST /{version}/{pixel_id}/events`` through ``facebook-business`` (``EventRequest`` of
``ServerSideEvent``s, sent with the adapter's own API object): at most 1,000 events a request,
each with ``action_source: system_generated``, ``event_id`` (closedloop's dedup id: Meta counts
a repeated ``event_name`` + ``event_id`` once), ``user_data`` (``em`` / ``ph`` SHA-256 of the
normalised email / phone, ``fbc`` built from the captured fbclid, ``lead_id``) and
``custom_data.value`` / ``currency``. The pixel is checked with one ``GET /{pixel_id}`` first.

One invalid event makes Meta refuse the whole request (code 100 with an event subcode): the
batch is split in halves until the event at fault is found, so only it is rejected and the
others are sent. With ``test_event_code`` set, events go to Events Manager's test tool and are
reported ``test``, not counted live. Meta has no adjustment API (``adjustable`` is False).

Normalisation (Meta "Customer information parameters"): email trimmed and lower-cased (no
provider-specific rules); phone digits only, with the country code, no ``+`` or leading zeros.

Reference: https://developers.facebook.com/docs/marketing-api/conversions-api/using-the-api and
https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar, TypeVar

from facebook_business.adobjects.adspixel import AdsPixel
from facebook_business.adobjects.serverside.action_source import ActionSource
from facebook_business.adobjects.serverside.custom_data import CustomData
from facebook_business.adobjects.serverside.event import Event
from facebook_business.adobjects.serverside.event_request import EventRequest
from facebook_business.adobjects.serverside.user_data import UserData

from connector.kernel.batches import chunks
from connector.kernel.errors import ClosedloopError, RecordError
from connector.kernel.identity import email_hash, sha256_hex
from connector.kernel.records import (
    Conversion,
    ConversionAdjustment,
    ConversionDestination,
    ConversionResult,
)
from connector.kernel.timeutil import to_epoch_ms

if TYPE_CHECKING:
    from facebook_business.api import FacebookAdsApi
    from facebook_business.session import FacebookSession

    from adapters.meta_ads.adapter import MetaAdsSettings

MAX_EVENTS = 1000  # "up to 1,000 events in data"
# Error subcodes of code 100 that are about an event of the request, not the request itself:
# too old, invalid parameter, malformed lead_id, not enough customer information.
EVENT_SUBCODES = {2804003, 2804019, 2804036, 2804050}
T = TypeVar("T")


class EventRejected(RecordError):
    """Meta refused an event of the request (and so the whole request)."""


class MetaConversions:
    """Conversions API events of one pixel (mixed into the Meta Ads source)."""

    max_conversions: ClassVar[int] = MAX_EVENTS
    event_max_age: ClassVar[timedelta] = timedelta(days=7)  # older events are refused
    adjustable: ClassVar[bool] = False

    if TYPE_CHECKING:
        settings: MetaAdsSettings

        def _open(self) -> tuple[FacebookSession, FacebookAdsApi]: ...

        def _call(self, api: FacebookAdsApi, fn: Callable[[], T], sends: bool = True) -> T: ...

    @property
    def test_mode(self) -> bool:
        return bool(self.settings.test_event_code)

    def hash_email(self, email: str) -> str:
        return email_hash(email)  # trim and lower-case, as Meta documents

    def hash_phone(self, e164_digits: str) -> str:
        return sha256_hex(e164_digits)

    def conversion_destinations(self, ids: Sequence[str]) -> dict[str, ConversionDestination]:
        """Every event goes to the settings' pixel: one read of it answers for all."""
        pixel_id, name, problem = self.settings.pixel_id, "", ""
        if not pixel_id:
            problem = (
                "the meta_ads source has no pixel_id: set it to the pixel (dataset) "
                "that receives the events (Events Manager > Data sources)"
            )
        else:
            session, api = self._open()
            try:
                pixel = self._call(
                    api, lambda: AdsPixel(pixel_id, api=api).api_get(fields=["id", "name"])
                )
                name = str(pixel.get("name") or "")
            except ClosedloopError as exc:
                problem = f"pixel {pixel_id} cannot be used: {exc}"
            finally:
                session.requests.close()
        return {i: ConversionDestination(i, name, problem) for i in ids}

    def send_conversions(
        self,
        conversions: Sequence[Conversion],
        on_batch: Callable[[list[ConversionResult]], None] | None = None,
    ) -> list[ConversionResult]:
        session, api = self._open()
        out: list[ConversionResult] = []
        try:
            for batch in chunks(conversions, MAX_EVENTS):
                results = self._send(api, list(batch))
                if on_batch is not None:
                    on_batch(results)
                out.extend(results)
        finally:
            session.requests.close()
        return out

    def adjust_conversions(
        self,
        adjustments: Sequence[ConversionAdjustment],
        on_batch: Callable[[list[ConversionResult]], None] | None = None,
    ) -> list[ConversionResult]:
        raise NotImplementedError("the Conversions API has no adjustments (adjustable=False)")

    def _send(self, api: FacebookAdsApi, batch: list[Conversion]) -> list[ConversionResult]:
        """One request; when Meta refuses it for one event, the halves, down to that event."""
        request = EventRequest(
            pixel_id=self.settings.pixel_id,
            events=[self._event(c) for c in batch],
            test_event_code=self.settings.test_event_code or None,
        )
        params = request.get_params()
        pixel = AdsPixel(self.settings.pixel_id, api=api)
        try:
            self._call(api, lambda: pixel.create_event(fields=[], params=params))
        except EventRejected as exc:
            if len(batch) == 1:
                return [ConversionResult(batch[0].dedup_id, "rejected", str(exc))]
            half = len(batch) // 2
            return self._send(api, batch[:half]) + self._send(api, batch[half:])
        status = "test" if self.test_mode else "accepted"
        return [ConversionResult(c.dedup_id, status) for c in batch]

    @staticmethod
    def _event(c: Conversion) -> Event:
        user = UserData(
            emails=[c.email_sha256] if c.email_sha256 else None,
            phones=[c.phone_sha256] if c.phone_sha256 else None,
            fbc=_fbc(c) or None,
            lead_id=c.lead_id or None,
        )
        custom = CustomData(value=c.value, currency=c.currency) if c.value is not None else None
        return Event(
            event_name=c.destination,
            event_time=int(c.occurred_at.timestamp()),
            event_id=c.dedup_id,
            action_source=ActionSource.SYSTEM_GENERATED,
            user_data=user,
            custom_data=custom,
        )


def _fbc(c: Conversion) -> str:
    """``fb.1.<ms the click id was captured>.<fbclid>`` (Meta's click id parameter format)."""
    if not c.fbclid or c.fbclid_at is None:
        return ""
    return f"fb.1.{to_epoch_ms(c.fbclid_at)}.{c.fbclid}"
