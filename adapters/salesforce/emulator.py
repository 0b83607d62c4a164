"""A wire-faithful Salesforce org on 127.0.0.1 for tests and the demo.

Serves what closedloop's adapter and simple-salesforce use, with Salesforce's paths, JSON shapes,
errors and limit headers (any ``vXX.X``):

- ``GET  /services/data/vXX.X/query/?q=`` and ``queryAll/`` (SOQL subset, see :mod:`.soql`),
  paging through root-relative ``nextRecordsUrl``; ``Sforce-Query-Options: batchSize=N``.
- ``GET  .../sobjects/`` (describeGlobal), ``.../sobjects/{type}/describe``,
  ``GET|PATCH|DELETE .../sobjects/{type}/{id}``, ``GET .../limits``.
- ``PATCH .../sobjects/{type}/{externalIdField}/{value}``: upsert, 201 created or (API 46.0+)
  200 with ``"created": false`` (204 before).
- sObject Collections (<= 200 records, allOrNone, results in input order): ``PATCH
  .../composite/sobjects`` (update), ``PATCH .../composite/sobjects/{type}/{externalIdField}``
  (upsert; ``created`` per record) and ``DELETE .../composite/sobjects?ids=`` (any objects).
- Bulk API 2.0 ingest (insert, update, upsert on ``externalIdFieldName``, delete): create,
  ``PUT .../batches`` (201), ``PATCH`` UploadComplete / Aborted, job info, ``successfulResults``
  (``sf__Created``) / ``failedResults`` / ``unprocessedrecords`` CSV; ``#N/A`` clears a field.
- ``POST /services/Soap/u/XX.X`` (SOAP login) and ``POST /services/oauth2/token`` (JWT bearer).
- The org's one ``Organization`` record (``SELECT TimeZoneSidKey FROM Organization``): its
  default time zone, ``America/Los_Angeles`` unless ``time_zone`` says otherwise.

Saves fail per record with Salesforce's codes: INVALID_FIELD, INVALID_FIELD_FOR_INSERT_UPDATE,
STRING_TOO_LONG, NUMBER_OUTSIDE_VALID_RANGE, restricted picklists, lookups (MALFORMED_ID,
FIELD_INTEGRITY_EXCEPTION for another object's Id, INVALID_CROSS_REFERENCE_KEY,
ENTITY_IS_DELETED), unique fields (DUPLICATE_VALUE) and upsert keys (MISSING_ARGUMENT, a key
repeated in one request: DUPLICATE_VALUE, several matches: DUPLICATE_EXTERNAL_ID). Deleting a
record clears the SetNull lookups that point to it.

Seed and test helpers: ``add_field``, ``add_record``, ``edit``, ``record``, ``delete``,
``convert_lead``, ``enable_multicurrency``, ``set_time_zone``, ``install_touchpoint_object``
(the custom object of :mod:`.touchpoint_object`, absent by default; ``omit=`` leaves fields
out), ``install_custom_object``, ``expire_session``, ``disable_api``; attributes ``page_size``,
``daily_limit`` / ``api_used``, ``bulk_polls_in_progress``, ``logins``, ``jobs``, ``records``,
``key_prefixes``.

Every data request counts against the daily API counter (``Sforce-Limit-Info: api-usage=N/M``);
once exhausted: 403 ``REQUEST_LIMIT_EXCEEDED``. An unknown session: 401 ``INVALID_SESSION_ID``.

References: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/ and
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import secrets
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import jwt

from adapters._emulator import EmulatorServer, Request, Response, route
from adapters.salesforce import emulator_soql as soql
from adapters.salesforce import touchpoint_object
from adapters.salesforce.touchpoint_object import CustomField
from connector.kernel.timeutil import parse_datetime

API = r"/services/data/v(?P<version>\d+\.\d)"
JOB = API + r"/jobs/ingest/(?P<job>750\w{12,15})"
RECORD_ID = r"(?P<id>[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?)"
SAMPLE_DAY = datetime(2026, 11, 20, tzinfo=UTC)
MAX_URI_LENGTH = 16_384
COLLECTION_LIMIT = 200
LABEL_PLURALS = {"Opportunity": "Opportunities", "OpportunityContactRole": "Contact Roles"}

KEY_PREFIXES = {
    "Lead": "00Q",
    "Contact": "003",
    "Account": "001",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
    "DatedConversionRate": "04w",
    "Organization": "00D",
}
LEAD_SOURCES = [
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
    "Advertisement",
    "Employee Referral",
    "External Referral",
    "Trade Show",
    "Word of mouth",
    # demo values an admin added for closedloop's channels
    "Email",
    "Paid Search",
    "Paid Social",
    "Organic Search",
    "Referral",
    "Display",
]
STAGES = [
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
]
NUMBER_TYPES = {"double", "currency", "percent", "int"}
TEXT_TYPES = {"string", "textarea", "email", "phone", "url", "picklist", "id", "reference"}
SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}
DELIMITERS = {
    "COMMA": ",",
    "SEMICOLON": ";",
    "TAB": "\t",
    "PIPE": "|",
    "CARET": "^",
    "BACKQUOTE": "`",
}
JWT_AUDIENCES = {"https://login.salesforce.com", "https://test.salesforce.com"}
# closedloop's fields on Lead and Contact in the sample org (Text(255); plus
# First_Touch_Date__c (datetime) and Touch_Count__c (number)): identity, captured UTMs, results
SAMPLE_TEXT_FIELDS = (
    "GA_Client_ID__c", "User_ID__c", "GCLID__c", "FBCLID__c",
    "UTM_Source__c", "UTM_Medium__c", "UTM_Campaign__c",
    "First_Touch_Channel__c", "First_Touch_Campaign__c", "Lead_Touch_Channel__c",
    "Lead_Touch_Source__c", "Last_Touch_Channel__c", "Last_Touch_Campaign__c", "Channel_Path__c",
)  # fmt: skip
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_SHAPE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def sf_datetime(value: datetime) -> str:
    """``2026-11-20T10:00:00.000+0000``: how Salesforce prints datetimes in JSON."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def id18(id15: str) -> str:
    """Append Salesforce's case-safe checksum to a 15-character id."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        flags = sum(1 << i for i, char in enumerate(chunk) if char.isupper())
        suffix += _CHECKSUM[flags]
    return id15 + suffix


def _well_formed(record_id: str) -> bool:
    """15 characters, or 18 whose last three are the checksum of the first 15."""
    if not _ID_SHAPE.fullmatch(record_id):
        return False
    return len(record_id) == 15 or id18(record_id[:15]) == record_id


def errors_body(message: str, code: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        body["fields"] = fields
    return [body]


def _field(
    name: str,
    type: str = "string",
    *,
    length: int | None = None,
    updateable: bool = True,
    picklist: list[str] | None = None,
    restricted: bool = False,
    custom: bool = False,
    reference_to: list[str] | None = None,
    label: str | None = None,
    precision: int | None = None,
    scale: int | None = None,
    external_id: bool = False,
    unique: bool = False,
    case_sensitive: bool = False,
    auto_number: bool = False,
) -> dict[str, Any]:
    """One field of a describe result (the keys clients read; Salesforce sends more)."""
    if length is None:
        length = {"id": 18, "reference": 18, "textarea": 32000, "email": 80, "phone": 40}.get(
            type, 255 if type in TEXT_TYPES else 0
        )
    number = type in {"double", "currency"}
    relationship = name.removesuffix("__c") + "__r" if custom else name.removesuffix("Id")
    return {
        "name": name,
        "label": label or name.removesuffix("__c").replace("_", " "),
        "type": type,
        "length": length,
        "byteLength": length * 3,
        "precision": precision if precision is not None else 18 if number else 0,
        "scale": scale if scale is not None else 2 if number else 0,
        "soapType": SOAP_TYPES.get(type, "xsd:string"),
        "updateable": updateable,
        "createable": updateable,
        "nillable": type not in {"boolean", "id"} and name not in {"LastName", "Name"},
        "custom": custom,
        "calculated": False,
        "autoNumber": auto_number,
        "nameField": name == "Name",
        "externalId": external_id,
        "idLookup": name == "Id" or external_id,
        "unique": unique,
        "caseSensitive": case_sensitive,
        "filterable": True,
        "sortable": type != "textarea",
        "defaultValue": False if type == "boolean" else None,
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
            for v in picklist or []
        ],
        "restrictedPicklist": restricted,
        "referenceTo": reference_to or [],
        "relationshipName": relationship if type == "reference" else None,
    }


def _standard_schema() -> dict[str, list[dict[str, Any]]]:
    def system(*extra: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            _field("Id", "id", updateable=False),
            _field("IsDeleted", "boolean", updateable=False),
            *extra,
            _field("CreatedDate", "datetime", updateable=False),
            _field("LastModifiedDate", "datetime", updateable=False),
            _field("SystemModstamp", "datetime", updateable=False),
        ]

    lead_source = _field(
        "LeadSource",
        "picklist",
        length=255,
        picklist=LEAD_SOURCES,
        restricted=True,
        label="Lead Source",
    )
    person = [
        _field("FirstName", length=40),
        _field("LastName", length=80),
        _field("Name", length=121, updateable=False),
        _field("Email", "email"),
        _field("Phone", "phone"),
        _field("Title", length=128),
        lead_source,
        _field("Description", "textarea"),
        _field("OwnerId", "reference", reference_to=["User"]),
    ]
    return {
        "Lead": system(
            *person,
            _field("Company", length=255),
            _field(
                "Status",
                "picklist",
                picklist=[
                    "Open - Not Contacted",
                    "Working - Contacted",
                    "Closed - Converted",
                    "Closed - Not Converted",
                ],
            ),
            _field("IsConverted", "boolean", updateable=False),
            _field("ConvertedContactId", "reference", updateable=False, reference_to=["Contact"]),
            _field("ConvertedAccountId", "reference", updateable=False, reference_to=["Account"]),
            _field("ConvertedDate", "date", updateable=False),
        ),
        "Contact": system(*person, _field("AccountId", "reference", reference_to=["Account"])),
        "Account": system(
            _field("Name"),
            _field("Website", "url"),
            _field("Industry", "picklist", picklist=["Technology", "Finance", "Retail", "Other"]),
            _field("OwnerId", "reference", reference_to=["User"]),
        ),
        "Opportunity": system(
            _field("Name", length=120),
            _field("AccountId", "reference", reference_to=["Account"]),
            _field("Amount", "currency"),
            _field("StageName", "picklist", picklist=STAGES),
            _field("Probability", "percent"),
            _field("CloseDate", "date"),
            _field("IsWon", "boolean", updateable=False),
            _field("IsClosed", "boolean", updateable=False),
            _field("LeadSource", "picklist", picklist=LEAD_SOURCES, label="Lead Source"),
            _field("OwnerId", "reference", reference_to=["User"]),
        ),
        # The org itself: read-only through the API, and without IsDeleted.
        "Organization": [
            _field("Id", "id", updateable=False),
            _field("Name", length=80, updateable=False),
            _field(
                "TimeZoneSidKey",
                "picklist",
                updateable=False,
                label="Default Time Zone",
                picklist=[
                    "America/Los_Angeles",
                    "America/New_York",
                    "Europe/London",
                    "Europe/Berlin",
                    "Asia/Tokyo",
                    "GMT",
                ],
            ),
            _field(
                "DefaultLocaleSidKey",
                "picklist",
                updateable=False,
                label="Default Locale",
                picklist=["en_US", "en_GB", "de_DE"],
            ),
            _field(
                "OrganizationType",
                "picklist",
                updateable=False,
                label="Edition",
                picklist=["Developer Edition", "Enterprise Edition"],
            ),
            _field("CreatedDate", "datetime", updateable=False),
            _field("LastModifiedDate", "datetime", updateable=False),
            _field("SystemModstamp", "datetime", updateable=False),
        ],  # fmt: skip
        "OpportunityContactRole": system(
            _field("OpportunityId", "reference", reference_to=["Opportunity"]),
            _field("ContactId", "reference", reference_to=["Contact"]),
            _field(
                "Role",
                "picklist",
                picklist=["Decision Maker", "Economic Buyer", "Evaluator", "Influencer", "Other"],
            ),
            _field("IsPrimary", "boolean"),
        ),
    }


def _custom_object_fields(name_label: str, fields: Iterable[CustomField]) -> list[dict[str, Any]]:
    """Describe fields of a custom object: the system fields every one has, then its own."""
    user = ["User"]
    return [
        _field("Id", "id", updateable=False),
        _field("OwnerId", "reference", reference_to=user, label="Owner ID"),
        _field("IsDeleted", "boolean", updateable=False),
        _field("Name", length=80, updateable=False, auto_number=True, label=name_label),
        _field("CreatedDate", "datetime", updateable=False),
        _field("CreatedById", "reference", updateable=False, reference_to=user),
        _field("LastModifiedDate", "datetime", updateable=False),
        _field("LastModifiedById", "reference", updateable=False, reference_to=user),
        _field("SystemModstamp", "datetime", updateable=False),
        *(_custom_field(spec) for spec in fields),
    ]


def _custom_field(spec: CustomField) -> dict[str, Any]:
    kinds = {"Text": "string", "Lookup": "reference", "DateTime": "datetime",
             "Number": "double", "Currency": "currency"}  # fmt: skip
    return _field(
        spec.name,
        kinds[spec.type],
        length=spec.length,
        custom=True,
        reference_to=[spec.reference_to] if spec.reference_to else None,
        label=spec.label,
        precision=spec.precision,
        scale=spec.scale,
        external_id=spec.external_id,
        unique=spec.unique,
        case_sensitive=spec.case_sensitive,
    )


class _Rejected(Exception):
    """One record's save failed (a SaveResult error)."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields or []

    def as_json(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def as_csv(self) -> str:
        return f"{self.code}:{self.message}:{','.join(self.fields)} --"


class _BadValue(Exception):
    """A value of the wrong type: JSON_PARSER_ERROR for the request (REST), row error (bulk)."""


@dataclass
class _CustomObject:
    """What describe says about a custom object beyond its fields, and its auto-number."""

    label: str
    plural: str
    name_format: str  # e.g. TP-{0000000}
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def next_name(self) -> str:
        match = re.search(r"\{(0+)\}", self.name_format)
        if match is None:
            return self.name_format
        number = f"{next(self.numbers):0{len(match.group(1))}d}"
        return self.name_format[: match.start()] + number + self.name_format[match.end() :]


@dataclass
class _Job:
    id: str
    object: str
    operation: str
    line_ending: str
    delimiter: str
    created: str
    external_id_field: str | None = None  # upsert jobs
    state: str = "Open"
    uploads: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    successes: list[tuple[str, bool, list[str]]] = field(default_factory=list)  # id, created, row
    failures: list[tuple[str, str, list[str]]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    error_message: str = ""
    polls_left: int = 0


class Emulator(EmulatorServer):
    """An org with Lead, Contact, Account, Opportunity and OpportunityContactRole."""

    name = "salesforce"

    def __init__(
        self,
        session_id: str = "00Ddemo!session",
        username: str = "demo@example.com",
        password: str = "demo",
        security_token: str = "tok",
        daily_limit: int = 15000,
        rate_limit: tuple[int, float] | None = None,
        *,
        consumer_key: str = "3MVG9demo.consumer.key",
        jwt_public_key: str | bytes | None = None,
        page_size: int = 2000,
        time_zone: str = "America/Los_Angeles",
    ) -> None:
        super().__init__(rate_limit=rate_limit)
        self.session_id = session_id
        self.username, self.password, self.security_token = username, password, security_token
        self.consumer_key = consumer_key
        self.jwt_public_key = jwt_public_key
        self.daily_limit = daily_limit
        self.api_used = 0
        self.page_size = page_size
        self.bulk_polls_in_progress = 1  # polls answering InProgress before a job completes
        self.logins = 0
        self.org_id = id18("00D5g000004Demo")
        self.user_id = id18("0055g00000Demo1")
        self.schema: dict[str, dict[str, dict[str, Any]]] = {
            obj: {f["name"]: f for f in fields} for obj, fields in _standard_schema().items()
        }
        self.records: dict[str, dict[str, dict[str, Any]]] = {obj: {} for obj in self.schema}
        self.key_prefixes = dict(KEY_PREFIXES)
        self.custom_objects: dict[str, _CustomObject] = {}
        # parent object -> describe's childRelationships (lookups from custom objects)
        self.child_relationships: dict[str, list[dict[str, Any]]] = {}
        self.jobs: dict[str, _Job] = {}
        self._sessions = {session_id}
        self._issue_dead_sessions = False
        self._api_disabled = False
        self._cursors: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self._counter = itertools.count(1)
        created = sf_datetime(SAMPLE_DAY - timedelta(days=3650))
        self.records["Organization"][self.org_id] = {
            "Id": self.org_id, "Name": "Demo Company", "TimeZoneSidKey": time_zone,
            "DefaultLocaleSidKey": "en_US", "OrganizationType": "Enterprise Edition",
            "CreatedDate": created, "LastModifiedDate": created, "SystemModstamp": created,
            "IsDeleted": False,
        }  # fmt: skip
        # (object, field) -> folded value -> ids that held it: finds external ids without a
        # scan per upsert (a candidate is checked against the record before it counts)
        self._indexes: dict[tuple[str, str], dict[str, dict[str, None]]] = {}

    # -- seed API --------------------------------------------------------------------------
    def add_field(
        self,
        sobject: str,
        name: str,
        type: str = "string",
        length: int = 255,
        updateable: bool = True,
        picklist: list[str] | None = None,
        restricted: bool = False,
    ) -> None:
        """Add a (custom) field to an object's describe; existing records get null."""
        size = length if type in TEXT_TYPES else None
        self.schema[sobject][name] = _field(
            name,
            type,
            length=size,
            updateable=updateable,
            picklist=picklist,
            restricted=restricted,
            custom=name.endswith("__c"),
        )
        for record in self.records[sobject].values():
            record.setdefault(name, False if type == "boolean" else None)

    def add_record(
        self, sobject: str, fields: dict[str, Any], created_at: datetime | None = None
    ) -> str:
        """Insert a record as a person would; returns its 18-character Id."""
        with self._lock:
            unknown = [name for name in fields if name not in self.schema[sobject]]
            if unknown:
                raise KeyError(f"{sobject} has no fields {unknown}: add_field() them first")
            return self._create(sobject, fields, created_at)

    def _create(
        self, sobject: str, fields: dict[str, Any], created_at: datetime | None = None
    ) -> str:
        record_id = self.new_id(self.key_prefixes[sobject])
        stamp = sf_datetime(created_at or datetime.now(UTC))
        record: dict[str, Any] = {
            name: False if spec["type"] == "boolean" else None
            for name, spec in self.schema[sobject].items()
        }
        custom = self.custom_objects.get(sobject)
        if custom is not None:
            record.update(
                Name=custom.next_name(),
                OwnerId=self.user_id,
                CreatedById=self.user_id,
                LastModifiedById=self.user_id,
            )
        record.update(fields)
        record.update(
            Id=record_id,
            IsDeleted=False,
            CreatedDate=stamp,
            LastModifiedDate=stamp,
            SystemModstamp=stamp,
        )
        self._derive(sobject, record)
        self.records[sobject][record_id] = record
        self._reindex(sobject, record)
        return record_id

    def install_touchpoint_object(self, *, omit: Iterable[str] = ()) -> None:
        """Deploy ``CL_Touchpoint__c`` as ``deploy/salesforce`` does (absent until called).

        ``omit`` leaves fields out: an org with an older package, or fields hidden from the
        integration user by field-level security."""
        skipped = set(omit)
        unknown = skipped - set(touchpoint_object.FIELDS_BY_NAME)
        if unknown:
            raise KeyError(f"{touchpoint_object.OBJECT_NAME} has no fields {sorted(unknown)}")
        specs = [f for f in touchpoint_object.FIELDS if f.name not in skipped]
        with self._lock:
            self.install_custom_object(
                touchpoint_object.OBJECT_NAME,
                touchpoint_object.LABEL,
                touchpoint_object.PLURAL_LABEL,
                touchpoint_object.NAME_FORMAT,
                _custom_object_fields(touchpoint_object.NAME_FIELD_LABEL, specs),
            )
            for spec in specs:
                if spec.reference_to:
                    self.child_relationships.setdefault(spec.reference_to, []).append(
                        {
                            "childSObject": touchpoint_object.OBJECT_NAME,
                            "field": spec.name,
                            "relationshipName": f"{spec.relationship_name}__r",
                            "cascadeDelete": spec.delete_constraint == "Cascade",
                            "restrictedDelete": spec.delete_constraint == "Restrict",
                            "deprecatedAndHidden": False,
                        }
                    )

    def install_custom_object(
        self,
        name: str,
        label: str,
        plural: str,
        name_format: str,
        fields: list[dict[str, Any]],
    ) -> None:
        """Add a custom object (describe fields as :func:`_custom_object_fields` builds them)."""
        with self._lock:
            if name in self.schema:
                raise ValueError(f"{name} is already installed")
            taken = set(self.key_prefixes.values())
            self.key_prefixes[name] = next(
                p for p in (f"a0{c}" for c in _BASE62[10:]) if p not in taken
            )
            self.custom_objects[name] = _CustomObject(label, plural, name_format)
            self.schema[name] = {f["name"]: f for f in fields}
            self.records[name] = {}

    def edit(self, sobject: str, id: str, **fields: Any) -> None:
        """A person's edit in the UI: sets the fields and bumps SystemModstamp."""
        self._edit(sobject, id, fields)

    def _edit(
        self, sobject: str, id: str, fields: dict[str, Any], at: datetime | None = None
    ) -> None:
        with self._lock:
            record = self.records[sobject][id]
            record.update(fields)
            self._derive(sobject, record)
            self._reindex(sobject, record)
            self._touch(record, at)

    def record(self, sobject: str, id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self.records[sobject][id])

    def delete(self, sobject: str, id: str) -> None:
        """Move a record to the recycle bin (queryAll still sees it); lookups to it with
        ``deleteConstraint`` SetNull are cleared, as Salesforce does."""
        with self._lock:
            self._delete(sobject, id)

    def _delete(self, sobject: str, record_id: str) -> None:
        self._edit(sobject, record_id, {"IsDeleted": True})
        for child in self.child_relationships.get(sobject, []):
            if child["cascadeDelete"] or child["restrictedDelete"]:
                continue  # only SetNull lookups are modelled
            lookup = child["field"]
            for record in self.records[child["childSObject"]].values():
                if record.get(lookup) == record_id:
                    # a system change: SystemModstamp moves, LastModifiedDate does not
                    record[lookup] = None
                    stamp = parse_datetime(record["SystemModstamp"]) + timedelta(milliseconds=1)
                    record["SystemModstamp"] = sf_datetime(max(datetime.now(UTC), stamp))

    def convert_lead(
        self, lead_id: str, contact_id: str | None = None, *, at: datetime | None = None
    ) -> str:
        """Convert a lead (at ``at``, default now); creates the contact unless given."""
        at = at or datetime.now(UTC)
        lead = self.record("Lead", lead_id)
        if contact_id is None:
            system = {"Id", "Name", "IsDeleted", "CreatedDate", "LastModifiedDate", "OwnerId",
                      "SystemModstamp"}  # fmt: skip
            shared = {
                k: v for k, v in lead.items() if k in self.schema["Contact"] and k not in system
            }
            contact_id = self.add_record("Contact", shared, at)
        converted = {
            "IsConverted": True,
            "ConvertedContactId": contact_id,
            "ConvertedAccountId": self.record("Contact", contact_id).get("AccountId"),
            "Status": "Closed - Converted",
            "ConvertedDate": at.date().isoformat(),
        }
        self._edit("Lead", lead_id, converted, at)
        return contact_id

    def enable_multicurrency(self, rates: dict[str, float] | None = None) -> None:
        """Turn on multiple currencies: CurrencyIsoCode everywhere, DatedConversionRate."""
        rates = rates or {"USD": 1.0, "EUR": 0.92, "GBP": 0.79}
        codes = list(rates)
        for sobject in ("Lead", "Contact", "Account", "Opportunity"):
            self.add_field(
                sobject, "CurrencyIsoCode", "picklist", length=3, picklist=codes, restricted=True
            )
            for record in self.records[sobject].values():
                record["CurrencyIsoCode"] = record.get("CurrencyIsoCode") or codes[0]
        self.schema["DatedConversionRate"] = {
            f["name"]: f
            for f in [
                _field("Id", "id", updateable=False),
                _field("IsoCode", "picklist", picklist=codes),
                _field("ConversionRate", "double"),
                _field("StartDate", "date"),
                _field("NextStartDate", "date"),
                _field("CreatedDate", "datetime", updateable=False),
                _field("LastModifiedDate", "datetime", updateable=False),
                _field("SystemModstamp", "datetime", updateable=False),
                _field("IsDeleted", "boolean", updateable=False),
            ]
        }
        self.records["DatedConversionRate"] = {}
        for code, rate in rates.items():
            self.add_record(
                "DatedConversionRate",
                {
                    "IsoCode": code,
                    "ConversionRate": rate,
                    "StartDate": "0001-01-01",
                    "NextStartDate": "9999-12-31",
                },
            )

    def set_time_zone(self, name: str) -> None:
        """An admin changes the org's default time zone (Setup > Company Information)."""
        self._edit("Organization", self.org_id, {"TimeZoneSidKey": name})

    def expire_session(self, *, keep_expiring: bool = False) -> None:
        """Invalidate every session: the next request gets 401 INVALID_SESSION_ID.

        ``keep_expiring`` also makes sessions from later logins invalid (a revoked user)."""
        with self._lock:
            self._sessions.clear()
            self._issue_dead_sessions = keep_expiring

    def disable_api(self) -> None:
        """The user loses "API Enabled": every data request gets 403 API_CURRENTLY_DISABLED."""
        self._api_disabled = True

    def new_id(self, prefix: str) -> str:
        number = next(self._counter)
        digits = ""
        for _ in range(9):
            number, rest = divmod(number, 62)
            digits = _BASE62[rest] + digits
        return id18(prefix + "5g" + "0" + digits)

    # -- contract-suite helpers ------------------------------------------------------------
    def install_closedloop_fields(self) -> None:
        """The custom fields an admin deploys for closedloop (mappings/salesforce.yaml)."""
        for sobject in ("Lead", "Contact"):
            for name in SAMPLE_TEXT_FIELDS:
                self.add_field(sobject, name, length=255)
            self.add_field(sobject, "First_Touch_Date__c", "datetime")
            self.add_field(sobject, "Touch_Count__c", "double")
        for name in ("Primary_Channel__c", "Primary_Campaign__c", "First_Touch_Channel__c",
                     "Channel_Mix__c"):  # fmt: skip
            self.add_field("Opportunity", name, length=255)
        self.add_field("Opportunity", "Touch_Count__c", "double")

    def seed_sample(self) -> None:
        """30 accounts, contacts, leads (5 converted), opportunities and their contact roles,
        created in the 30 days before 2026-11-20, with closedloop's custom fields."""
        self.install_closedloop_fields()
        sources = ["Web", "Paid Search", "Organic Search", "Email", "Trade Show", None]
        stages = [
            "Prospecting",
            "Qualification",
            "Proposal/Price Quote",
            "Closed Won",
            "Closed Lost",
            "Negotiation/Review",
        ]
        contacts = []
        for i in range(30):
            created = SAMPLE_DAY - timedelta(days=30 - i, hours=(i * 5) % 24)
            account = self.add_record(
                "Account",
                {
                    "Name": f"Account {i:02d}",
                    "Website": f"https://account{i:02d}.example.com",
                    "Industry": "Technology",
                },
                created,
            )
            client_id = f"{1000000000 + i * 7919}.{1700000000 + i * 86400}"
            contacts.append(
                self.add_record(
                    "Contact",
                    {
                        "FirstName": f"Casey{i:02d}",
                        "LastName": "Contact",
                        "AccountId": account,
                        "Email": f"contact{i:02d}@example.com",
                        "LeadSource": sources[i % len(sources)],
                        "GA_Client_ID__c": client_id if i % 2 == 0 else None,
                        "User_ID__c": f"user-{i:03d}" if i % 6 == 0 else None,
                    },
                    created + timedelta(hours=1),
                )
            )
            lead = self.add_record(
                "Lead",
                {
                    "FirstName": f"Lee{i:02d}",
                    "LastName": "Lead",
                    "Company": f"Prospect {i:02d}",
                    "Email": f"lead{i:02d}@example.com",
                    "Status": "Open - Not Contacted",
                    "LeadSource": sources[(i + 1) % len(sources)],
                    "GA_Client_ID__c": client_id if i % 2 == 1 else None,
                    "User_ID__c": f"user-{i:03d}" if i % 6 == 3 else None,
                    "GCLID__c": f"Cj0KCQiA{i:04d}" if i % 5 == 1 else None,
                    "UTM_Source__c": "google" if i % 5 == 1 else None,
                    "UTM_Medium__c": "cpc" if i % 5 == 1 else None,
                },
                created + timedelta(hours=2),
            )
            if i % 6 == 5:
                self.convert_lead(lead, contacts[-1], at=created + timedelta(days=1))
            stage = stages[i % len(stages)]
            opportunity = self.add_record(
                "Opportunity",
                {
                    "Name": f"Deal {i:02d}",
                    "AccountId": account,
                    "Amount": 1000.0 + 250 * i,
                    "StageName": stage,
                    "CloseDate": (created + timedelta(days=20)).date().isoformat(),
                },
                created + timedelta(hours=3),
            )
            self.add_record(
                "OpportunityContactRole",
                {
                    "OpportunityId": opportunity,
                    "ContactId": contacts[-1],
                    "IsPrimary": True,
                    "Role": "Decision Maker",
                },
                created + timedelta(hours=3),
            )
            if i > 0 and i % 3 == 0:
                self.add_record(
                    "OpportunityContactRole",
                    {
                        "OpportunityId": opportunity,
                        "ContactId": contacts[i - 1],
                        "IsPrimary": False,
                        "Role": "Influencer",
                    },
                    created + timedelta(hours=4),
                )

    def adapter_settings(self, *, valid_token: bool = True) -> dict[str, Any]:
        return {
            "instance_url": self.url,
            "session_id": self.session_id if valid_token else "00Dinvalid!expired",
            "allow_http": True,
            "bulk_poll_interval": 0.01,
        }

    # -- hooks -----------------------------------------------------------------------------
    def check_auth(self, req: Request) -> Response | None:
        if not req.path.startswith("/services/data/"):
            return None
        if len(req.path) + len(urlencode(req.query, doseq=True)) + 1 > MAX_URI_LENGTH:
            return Response(414, errors_body("The request URI is too long", "URI_TOO_LONG"))
        token = req.headers.get("authorization", "").removeprefix("Bearer ").strip()
        with self._lock:
            if token not in self._sessions:
                return Response(
                    401, errors_body("Session expired or invalid", "INVALID_SESSION_ID")
                )
            if self._api_disabled:
                return Response(
                    403, errors_body("API is disabled for this User", "API_CURRENTLY_DISABLED")
                )
            if self.api_used >= self.daily_limit:
                return Response(
                    403,
                    errors_body("TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED"),
                    self._limit_header(),
                )
            self.api_used += 1
        return None

    def rate_limited_response(self, req: Request) -> Response:
        return Response(
            429,
            errors_body("Too many requests. Retry after 1 second.", "REQUEST_LIMIT_EXCEEDED"),
            {"Retry-After": "1"},
        )

    def server_error_response(self, req: Request, status: int) -> Response:
        if status == 503:
            return Response(
                503,
                errors_body(
                    "Server is temporarily unavailable, retry later.", "SERVER_UNAVAILABLE"
                ),
            )
        return Response(
            status,
            errors_body(
                "An unexpected error occurred. Please include this ErrorId if you contact support: "
                "1234567890-12345 (-1234567890)",
                "UNKNOWN_EXCEPTION",
            ),
        )

    def not_found_response(self, req: Request) -> Response:
        return Response(404, errors_body("The requested resource does not exist", "NOT_FOUND"))

    def _route(self, req: Request) -> Response:
        with self._lock:
            response = super()._route(req)
        if req.path.startswith("/services/data/"):
            response.headers.update(self._limit_header())
        return response

    @staticmethod
    def _base(req: Request) -> str:
        return f"/services/data/v{req.params['version']}"

    def _limit_header(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.daily_limit}"}

    # -- REST: limits, describe, records ---------------------------------------------------
    @route("GET", API + r"/limits")
    def limits(self, req: Request) -> Response:
        jobs_today = len(self.jobs)
        return Response(
            200,
            {
                "DailyApiRequests": {
                    "Max": self.daily_limit,
                    "Remaining": self.daily_limit - self.api_used,
                },
                "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000 - jobs_today},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
                "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
                "DataStorageMB": {"Max": 5, "Remaining": 5},
            },
        )

    @route("GET", API + r"/sobjects")
    def describe_global(self, req: Request) -> Response:
        version = req.params["version"]
        return Response(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": COLLECTION_LIMIT,
                "sobjects": [self._object_info(sobject, version) for sobject in self.schema],
            },
        )

    @route("GET", API + r"/sobjects/(?P<sobject>\w+)/describe")
    def describe(self, req: Request) -> Response:
        sobject = req.params["sobject"]
        if sobject not in self.schema:
            return self.not_found_response(req)
        return Response(
            200,
            {
                **self._object_info(sobject, req.params["version"]),
                "fields": list(self.schema[sobject].values()),
                "childRelationships": self.child_relationships.get(sobject, []),
            },
        )

    def _object_info(self, sobject: str, version: str) -> dict[str, Any]:
        """What describeGlobal lists for an object (describe adds fields and children)."""
        custom = self.custom_objects.get(sobject)
        url = f"/services/data/v{version}/sobjects/{sobject}"
        return {
            "name": sobject,
            "label": custom.label if custom else sobject,
            "labelPlural": custom.plural if custom else LABEL_PLURALS.get(sobject, sobject + "s"),
            "keyPrefix": self.key_prefixes.get(sobject),
            "custom": custom is not None,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "urls": {"sobject": url, "describe": f"{url}/describe", "rowTemplate": url + "/{ID}"},
        }

    @route("GET", API + r"/sobjects/(?P<sobject>\w+)/" + RECORD_ID)
    def get_record(self, req: Request) -> Response:
        record = self._find(req.params["sobject"], req.params["id"])
        if record is None:
            return self.not_found_response(req)
        wanted = req.arg("fields")
        names = (
            [self._canonical(req.params["sobject"], n) for n in wanted.split(",")]
            if wanted
            else list(record)
        )
        return Response(
            200, self._json_record(req.params["sobject"], record, names, req.params["version"])
        )

    @route("PATCH", API + r"/sobjects/(?P<sobject>\w+)/" + RECORD_ID)
    def patch_record(self, req: Request) -> Response:
        sobject, record_id = req.params["sobject"], req.params["id"]
        if sobject not in self.schema or self._find(sobject, record_id) is None:
            return self.not_found_response(req)
        try:
            body = req.json()
            values = self._json_values(sobject, body)
            self._save(sobject, record_id, values)
        except (json.JSONDecodeError, _BadValue) as exc:
            return Response(400, errors_body(str(exc), "JSON_PARSER_ERROR"))
        except _Rejected as exc:
            return Response(400, errors_body(exc.message, exc.code, exc.fields))
        return Response(204)

    @route("DELETE", API + r"/sobjects/(?P<sobject>\w+)/" + RECORD_ID)
    def delete_record(self, req: Request) -> Response:
        sobject, record_id = req.params["sobject"], req.params["id"]
        record = self._find(sobject, record_id) if sobject in self.schema else None
        if record is None:
            return self.not_found_response(req)
        if record["IsDeleted"]:
            return Response(404, errors_body("entity is deleted", "ENTITY_IS_DELETED", []))
        self._delete(sobject, record["Id"])
        return Response(204)

    @route("PATCH", API + r"/sobjects/(?P<sobject>\w+)/(?P<field>\w+)/(?P<value>[^/]+)")
    def upsert_record(self, req: Request) -> Response:
        """sObject Rows by External ID: 201 created, or (API 46.0+) 200 with created false."""
        sobject = req.params["sobject"]
        key_field = self._external_id_field(sobject, req.params["field"])
        if key_field is None:
            return self.not_found_response(req)
        try:
            values = self._json_values(sobject, req.json() or {})
            values.pop(key_field, None)
            key = unquote(req.params["value"])
            record_id, created = self._upsert(sobject, key_field, key, values)
        except (json.JSONDecodeError, _BadValue) as exc:
            return Response(400, errors_body(str(exc), "JSON_PARSER_ERROR"))
        except _Rejected as exc:
            if exc.code == "DUPLICATE_EXTERNAL_ID":
                urls = [
                    f"{self._base(req)}/sobjects/{sobject}/{i}"
                    for i in self._matching(sobject, key_field, key)
                ]
                return Response(300, urls)
            return Response(400, errors_body(exc.message, exc.code, exc.fields))
        result = {"id": record_id, "success": True, "errors": [], "created": created}
        if created:
            return Response(201, result)
        return Response(200, result) if float(req.params["version"]) >= 46.0 else Response(204)

    def _external_id_field(self, sobject: str, name: str) -> str | None:
        """The canonical name of an External ID field of ``sobject``, if ``name`` is one."""
        canonical = self._canonical(sobject, name) if sobject in self.schema else None
        spec = self.schema[sobject][canonical] if canonical else None
        return canonical if spec is not None and spec["externalId"] else None

    # -- REST: sObject Collections ----------------------------------------------------------
    @route("PATCH", API + r"/composite/sobjects")
    def collection_update(self, req: Request) -> Response:
        parsed = self._collection_records(req)
        if isinstance(parsed, Response):
            return parsed
        body, items = parsed

        def save(sobject: str, record_id: str, values: dict[str, Any]) -> dict[str, Any]:
            if sobject not in self.schema:
                raise _Rejected("INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
            return {"id": self._save(sobject, record_id, values)}

        saves = [partial(save, sobject, str(values.pop("Id", "") or ""), values)
                 for sobject, values in items]  # fmt: skip
        ids = [str(item.get("id") or item.get("Id") or "") or None for item in body["records"]]
        results = self._run_collection(
            bool(body.get("allOrNone")), saves, lambda i, exc: {"id": ids[i]}
        )
        return Response(200, results)

    @route("PATCH", API + r"/composite/sobjects/(?P<sobject>\w+)/(?P<field>\w+)")
    def collection_upsert(self, req: Request) -> Response:
        """Upsert up to 200 records of one object on an External ID field (API 46.0+)."""
        sobject = req.params["sobject"]
        key_field = self._external_id_field(sobject, req.params["field"])
        if key_field is None:
            return self.not_found_response(req)
        parsed = self._collection_records(req)
        if isinstance(parsed, Response):
            return parsed
        body, items = parsed
        keys = [values.pop(key_field, None) for _, values in items]
        repeated = self._repeated(sobject, key_field, keys)

        def upsert(kind: str, key: str | None, values: dict[str, Any]) -> dict[str, Any]:
            if kind != sobject:
                raise _Rejected("INVALID_TYPE", f"sObject type '{kind}' is not {sobject}.")
            if key is not None and key in repeated:
                raise self._duplicate_key(key_field, key)
            record_id, created = self._upsert(sobject, key_field, key, values)
            return {"id": record_id, "created": created}

        saves = [partial(upsert, kind, key, values)
                 for (kind, values), key in zip(items, keys, strict=True)]  # fmt: skip
        results = self._run_collection(
            bool(body.get("allOrNone")), saves, lambda i, exc: {"created": False}
        )
        return Response(200, results)

    @route("DELETE", API + r"/composite/sobjects")
    def collection_delete(self, req: Request) -> Response:
        """Delete up to 200 records by Id (any objects); SetNull lookups to them are cleared."""
        ids = [i for i in (req.arg("ids") or "").split(",") if i]
        if not ids:
            return Response(400, errors_body("ids parameter is required", "MALFORMED_QUERY"))
        if len(ids) > COLLECTION_LIMIT:
            return self._too_many_records()
        saves = [partial(lambda i: {"id": self._remove(i)}, record_id) for record_id in ids]
        all_or_none = (req.arg("allOrNone") or "false").lower() == "true"
        return Response(200, self._run_collection(all_or_none, saves, lambda i, exc: {}))

    def _collection_records(
        self, req: Request
    ) -> Response | tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        """The request body and each record's (type, typed values), or the 400 that fails the
        whole request: bad JSON, more than 200 records, or a value of the wrong type."""
        try:
            body = req.json()
            records = body["records"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            return Response(
                400, errors_body(f"Unexpected request body: {exc}", "JSON_PARSER_ERROR")
            )
        if len(records) > COLLECTION_LIMIT:
            return self._too_many_records()
        items: list[tuple[str, dict[str, Any]]] = []
        try:
            for item in records:
                sobject = (item.get("attributes") or {}).get("type", "")
                fields = {k: v for k, v in item.items() if k not in {"attributes", "id"}}
                if "id" in item:
                    fields["Id"] = item["id"]
                values = self._json_values(sobject, fields) if sobject in self.schema else fields
                items.append((sobject, values))
        except _BadValue as exc:
            return Response(400, errors_body(str(exc), "JSON_PARSER_ERROR"))
        return body, items

    @staticmethod
    def _too_many_records() -> Response:
        return Response(
            400,
            errors_body(
                "record limit reached. cannot submit more than 200 records into this call",
                "EXCEEDED_ID_LIMIT",
            ),
        )

    def _run_collection(
        self,
        all_or_none: bool,
        saves: Sequence[Callable[[], dict[str, Any]]],
        failed: Callable[[int, _Rejected], dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """Run each save in input order; a :class:`_Rejected` becomes ``failed(index, error)``
        with the error. With ``allOrNone`` one failure rolls every save back."""
        snapshot = (
            {obj: {i: dict(r) for i, r in recs.items()} for obj, recs in self.records.items()}
            if all_or_none
            else None
        )
        results: list[dict[str, Any]] = []
        for index, save in enumerate(saves):
            try:
                saved = save()
                results.append({"id": saved.pop("id"), "success": True, "errors": [], **saved})
            except _Rejected as exc:
                results.append({**failed(index, exc), "success": False, "errors": [exc.as_json()]})
        if snapshot is None or all(r["success"] for r in results):
            return results
        self.records = snapshot
        self._indexes.clear()
        rolled_back = _Rejected(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and "
            "the request was using AllOrNone header",
        )
        return [
            {**r, "success": False, "errors": [rolled_back.as_json()]}
            | ({"created": False} if "created" in r else {})
            if r["success"]
            else r
            for r in results
        ]

    def _repeated(
        self, sobject: str, key_field: str | None, keys: Sequence[str | None]
    ) -> set[str]:
        """The external ids given more than once in one request or job (all their records fail)."""
        if key_field is None:
            return set()
        fold = self._folder(sobject, key_field)
        seen = Counter(fold(k) for k in keys if k is not None)
        return {k for k in keys if k is not None and seen[fold(k)] > 1}

    @staticmethod
    def _duplicate_key(key_field: str, key: str) -> _Rejected:
        return _Rejected("DUPLICATE_VALUE", f"Duplicate external id specified: {key}", [key_field])

    # -- REST: query -----------------------------------------------------------------------
    @route("GET", API + r"/(?P<kind>query|queryAll)")
    def query(self, req: Request) -> Response:
        text = req.arg("q")
        if not text:
            return Response(
                400, errors_body("A query string has to be specified", "MALFORMED_QUERY")
            )
        try:
            query = soql.parse(text)
            rows = self._run_query(
                query,
                text,
                include_deleted=req.params["kind"] == "queryAll",
                version=req.params["version"],
            )
        except soql.SoqlError as exc:
            return Response(400, errors_body(str(exc), exc.code))
        if query.count:
            return Response(200, {"totalSize": len(rows), "done": True, "records": []})
        return self._page(req, rows, 0, self._batch_size(req), new=True)

    @route("GET", API + r"/(?P<kind>query|queryAll)/(?P<locator>01g\w+)-(?P<offset>\d+)")
    def query_more(self, req: Request) -> Response:
        cursor = self._cursors.get(req.params["locator"])
        if cursor is None:
            return Response(400, errors_body("invalid query locator", "INVALID_QUERY_LOCATOR"))
        rows, batch = cursor
        return self._page(req, rows, int(req.params["offset"]), batch, new=False)

    def _batch_size(self, req: Request) -> int:
        options = req.headers.get("sforce-query-options", "")
        size = 2000
        for part in options.split(","):
            key, _, value = part.strip().partition("=")
            if key == "batchSize" and value.isdigit():
                size = max(200, min(2000, int(value)))
        return min(size, self.page_size)

    def _page(
        self, req: Request, rows: list[dict[str, Any]], offset: int, batch: int, new: bool
    ) -> Response:
        page = rows[offset : offset + batch]
        body: dict[str, Any] = {"totalSize": len(rows), "done": offset + batch >= len(rows)}
        if not body["done"]:
            locator = req.params.get("locator") or self.new_id("01g")[:15]
            if new:
                self._cursors[locator] = (rows, batch)
            body["nextRecordsUrl"] = (
                f"/services/data/v{req.params['version']}/"
                f"{req.params['kind']}/{locator}-{offset + batch}"
            )
        body["records"] = page
        return Response(200, body)

    def _run_query(
        self, query: soql.Query, text: str, include_deleted: bool, version: str
    ) -> list[dict[str, Any]]:
        sobject = next((o for o in self.schema if o.lower() == query.sobject.lower()), None)
        if sobject is None:
            raise soql.SoqlError(
                f"\n{text}\nERROR at Row:1\nsObject type '{query.sobject}' is not supported. "
                "If you are attempting to use a custom object, be sure to append the '__c' after "
                "the entity name. Please reference your WSDL or the describe call for the "
                "appropriate names.",
                "INVALID_TYPE",
            )
        for name in query.referenced_fields():
            if self._canonical(sobject, name) is None:
                raise soql.SoqlError(
                    f"\n{text}\nERROR at Row:1\nNo such column '{name}' on entity '{sobject}'. If "
                    "you are attempting to use a custom field, be sure to append the '__c' after "
                    "the custom field name. Please reference your WSDL or the describe call for "
                    "the appropriate names.",
                    "INVALID_FIELD",
                )
        lowered = [
            {k.lower(): v for k, v in record.items()}
            for record in self.records[sobject].values()
            if include_deleted or not record["IsDeleted"]
        ]
        id_fields = frozenset(
            n.lower() for n, f in self.schema[sobject].items() if f["type"] in {"id", "reference"}
        )
        cased = frozenset(
            n.lower()
            for n, f in self.schema[sobject].items()
            if f.get("caseSensitive") and f["unique"]
        )
        selected = soql.order(
            [r for r in lowered if soql.matches(query.where, r, id_fields, cased)],
            query.order_by,
            id_fields | cased,
        )
        if query.limit is not None:
            selected = selected[: query.limit]
        names = [self._canonical(sobject, n) or n for n in query.fields]
        return [
            self._json_record(sobject, self.records[sobject][r["id"]], names, version)
            for r in selected
        ]

    # -- Bulk API 2.0 ingest ---------------------------------------------------------------
    @route("POST", API + r"/jobs/ingest")
    def create_job(self, req: Request) -> Response:
        try:
            body = req.json()
        except json.JSONDecodeError as exc:
            return Response(400, errors_body(str(exc), "JSON_PARSER_ERROR"))
        sobject, operation = body.get("object"), body.get("operation")
        if sobject not in self.schema:
            return Response(400, errors_body(f"Unable to find object: {sobject}", "INVALIDJOB"))
        if operation not in {"insert", "update", "upsert", "delete"}:
            return Response(
                400,
                errors_body(
                    f"the emulator implements insert, update, upsert and delete, not {operation}",
                    "INVALIDJOB",
                ),
            )
        if body.get("contentType", "CSV") != "CSV":
            return Response(400, errors_body("contentType must be CSV", "INVALIDJOB"))
        key_field = None
        if operation == "upsert":
            key_field = self._external_id_field(sobject, body.get("externalIdFieldName") or "")
            if key_field is None:
                return Response(
                    400,
                    errors_body(
                        "InvalidJob : Field name provided, "
                        f"{body.get('externalIdFieldName')} does not match an External ID, "
                        f"Salesforce Id, or indexed field for {sobject}",
                        "INVALIDJOB",
                    ),
                )
        job = _Job(
            id=self.new_id("750"),
            object=sobject,
            operation=operation,
            line_ending=body.get("lineEnding", "LF"),
            delimiter=body.get("columnDelimiter", "COMMA"),
            created=sf_datetime(datetime.now(UTC)),
            external_id_field=key_field,
        )
        self.jobs[job.id] = job
        info = self._job_info(job, req.params["version"])
        info["contentUrl"] = f"services/data/v{req.params['version']}/jobs/ingest/{job.id}/batches"
        return Response(200, info)

    @route("PUT", JOB + r"/batches")
    def upload_job_data(self, req: Request) -> Response:
        job = self.jobs.get(req.params["job"])
        if job is None:
            return self.not_found_response(req)
        if job.state != "Open":
            return Response(
                409, errors_body(f"Job {job.id} is not open for data upload", "INVALIDJOBSTATE")
            )
        if not req.headers.get("content-type", "").startswith("text/csv"):
            return Response(400, errors_body("Content-Type must be text/csv", "INVALIDJOB"))
        if not req.body:
            return Response(400, errors_body("No content uploaded", "INVALIDJOB"))
        job.uploads.append(req.body.decode("utf-8"))
        return Response(201)

    @route("PATCH", JOB)
    def patch_job(self, req: Request) -> Response:
        job = self.jobs.get(req.params["job"])
        if job is None:
            return self.not_found_response(req)
        state = (req.json() or {}).get("state")
        if state == "UploadComplete" and job.state == "Open":
            job.state = "UploadComplete"
            job.polls_left = self.bulk_polls_in_progress
        elif state == "Aborted" and job.state in {"Open", "UploadComplete", "InProgress"}:
            job.state = "Aborted"
        else:
            return Response(
                400,
                errors_body(
                    f"Cannot change job state from {job.state} to {state}", "INVALIDJOBSTATE"
                ),
            )
        return Response(200, self._job_info(job, req.params["version"]))

    @route("GET", JOB)
    def get_job(self, req: Request) -> Response:
        job = self.jobs.get(req.params["job"])
        if job is None:
            return self.not_found_response(req)
        if job.state in {"UploadComplete", "InProgress"}:
            if job.polls_left > 0:
                job.polls_left -= 1
                job.state = "InProgress"
            else:
                self._process(job)
        return Response(200, self._job_info(job, req.params["version"]))

    @route("DELETE", JOB)
    def delete_job(self, req: Request) -> Response:
        if self.jobs.pop(req.params["job"], None) is None:
            return self.not_found_response(req)
        return Response(204)

    @route("GET", JOB + r"/(?P<kind>successfulResults|failedResults|unprocessedrecords)")
    def job_results(self, req: Request) -> Response:
        job = self.jobs.get(req.params["job"])
        if job is None:
            return self.not_found_response(req)
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        kind = req.params["kind"]
        if kind == "successfulResults":
            writer.writerow(["sf__Id", "sf__Created", *job.header])
            writer.writerows(
                [record_id, "true" if created else "false", *row]
                for record_id, created, row in job.successes
            )
        elif kind == "failedResults":
            writer.writerow(["sf__Id", "sf__Error", *job.header])
            writer.writerows([rid, error, *row] for rid, error, row in job.failures)
        else:
            writer.writerow(job.header)
            writer.writerows(job.unprocessed)
        return Response(200, out.getvalue(), content_type="text/csv")

    def _job_info(self, job: _Job, version: str) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.object,
            "createdById": self.user_id,
            "createdDate": job.created,
            "systemModstamp": job.created,
            "state": job.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "jobType": "V2Ingest",
            "lineEnding": job.line_ending,
            "columnDelimiter": job.delimiter,
            "numberRecordsProcessed": len(job.successes) + len(job.failures),
            "numberRecordsFailed": len(job.failures),
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        }
        if job.external_id_field:
            info["externalIdFieldName"] = job.external_id_field
        if job.error_message:
            info["errorMessage"] = job.error_message
        return info

    def _process(self, job: _Job) -> None:
        """Run an uploaded job, row by row, like the platform does."""
        rows: list[list[str]] = []
        delimiter = DELIMITERS.get(job.delimiter, ",")
        for upload in job.uploads:
            parsed = list(csv.reader(io.StringIO(upload, newline=""), delimiter=delimiter))
            if not parsed:
                continue
            if not job.header:
                job.header = parsed[0]
            rows.extend(parsed[1:])
        columns = [self._canonical(job.object, name) for name in job.header]
        problem = self._job_problem(job, columns, rows)
        if problem:
            job.state = "Failed"
            job.error_message = "InvalidBatch : " + problem
            job.unprocessed = rows
            return
        keys = self._upsert_keys(job, columns, rows)
        repeated = self._repeated(job.object, job.external_id_field, keys)
        for row, key in zip(rows, keys, strict=True):
            record_id = self._cell(columns, row, "Id")
            try:
                if key is not None and key in repeated:
                    raise self._duplicate_key(job.external_id_field or "", key)
                saved, created = self._bulk_row(job, columns, row, key)
                job.successes.append((saved, created, row))
            except _Rejected as exc:
                job.failures.append((record_id, exc.as_csv(), row))
        job.state = "JobComplete"

    def _job_problem(
        self, job: _Job, columns: list[str | None], rows: list[list[str]]
    ) -> str | None:
        """Why the whole job fails before any row is processed (its ``errorMessage``)."""
        unknown = [h for h, c in zip(job.header, columns, strict=True) if c is None]
        if not rows:
            return "No data uploaded"
        if unknown:
            return "Field name not found : " + unknown[0]
        if job.operation in {"update", "delete"} and "Id" not in columns:
            return f"Id not specified in an {job.operation} call"
        if job.operation == "delete" and columns != ["Id"]:
            return "The 'delete' batch must contain only 'Id'"
        return None

    def _upsert_keys(
        self, job: _Job, columns: list[str | None], rows: list[list[str]]
    ) -> list[str | None]:
        """Each row's external id for an upsert job (None for other jobs or a blank cell)."""
        if job.operation != "upsert" or job.external_id_field not in columns:
            return [None] * len(rows)
        at = columns.index(job.external_id_field)
        return [row[at] if at < len(row) and row[at] else None for row in rows]

    @staticmethod
    def _cell(columns: list[str | None], row: list[str], name: str) -> str:
        at = columns.index(name) if name in columns else len(row)
        return row[at] if at < len(row) else ""

    def _bulk_row(
        self, job: _Job, columns: list[str | None], row: list[str], key: str | None
    ) -> tuple[str, bool]:
        """Apply one CSV row: (the record's Id, whether it was created)."""
        values: dict[str, Any] = {}
        for col, (name, raw) in enumerate(zip(columns, row, strict=False)):
            if name in {"Id", job.external_id_field} or raw == "":
                continue  # an empty cell leaves the field unchanged
            values[name or ""] = self._csv_value(job.object, name or "", raw, col)
        record_id = self._cell(columns, row, "Id")
        if job.operation == "update":
            return self._save(job.object, record_id, values), False
        if job.operation == "insert":
            return self._insert(job.object, values), True
        if job.operation == "delete":
            if not self._is_id_of(job.object, record_id):
                raise _Rejected("MALFORMED_ID", f"bad id {record_id}")
            return self._remove(record_id), False
        return self._upsert(job.object, job.external_id_field or "", key, values)

    # -- login -----------------------------------------------------------------------------
    @route("POST", r"/services/Soap/u/(?P<version>\d+\.\d)")
    def soap_login(self, req: Request) -> Response:
        try:
            root = ET.fromstring(req.body)
        except ET.ParseError:
            return self._soap_fault("INVALID_LOGIN", "Invalid SOAP request")
        values = {el.tag.rsplit("}", 1)[-1]: (el.text or "") for el in root.iter()}
        if (
            values.get("username") != self.username
            or values.get("password") != self.password + self.security_token
        ):
            return self._soap_fault(
                "INVALID_LOGIN", "Invalid username, password, security token; or user locked out."
            )
        session = self._issue_session()
        version = req.params["version"]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns="urn:partner.soap.sforce.com" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse>'
            f"<result><metadataServerUrl>{self.url}/services/Soap/m/{version}/{self.org_id[:15]}"
            "</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
            f"<serverUrl>{self.url}/services/Soap/u/{version}/{self.org_id[:15]}</serverUrl>"
            f"<sessionId>{session}</sessionId><userId>{self.user_id}</userId><userInfo>"
            f"<organizationId>{self.org_id}</organizationId><userName>{self.username}</userName>"
            "</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )
        return Response(200, body, content_type="text/xml; charset=utf-8")

    @route("POST", r"/services/oauth2/token")
    def oauth_token(self, req: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return Response(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
            )
        problem = self._jwt_problem(form.get("assertion", ""))
        if problem:
            return Response(400, {"error": problem[0], "error_description": problem[1]})
        return Response(
            200,
            {
                "access_token": self._issue_session(),
                "scope": "api",
                "instance_url": self.url,
                "id": f"https://login.salesforce.com/id/{self.org_id}/{self.user_id}",
                "token_type": "Bearer",
            },
        )

    def _jwt_problem(self, assertion: str) -> tuple[str, str] | None:
        try:
            if jwt.get_unverified_header(assertion).get("alg") != "RS256":
                return ("invalid_grant", "invalid assertion")
            if self.jwt_public_key is not None:
                claims = jwt.decode(
                    assertion,
                    self.jwt_public_key,
                    algorithms=["RS256"],
                    options={"verify_aud": False, "verify_exp": False},
                )
            else:
                claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return ("invalid_grant", "invalid assertion")
        if claims.get("iss") != self.consumer_key:
            return ("invalid_client_id", "client identifier invalid")
        if claims.get("aud") not in JWT_AUDIENCES | {self.url}:
            return ("invalid_grant", "audience is invalid")
        if claims.get("sub") != self.username:
            return ("invalid_grant", "invalid assertion")
        try:
            expired = float(claims.get("exp", 0)) < datetime.now(UTC).timestamp()
        except (TypeError, ValueError):
            expired = True
        return ("invalid_grant", "expired authorization code") if expired else None

    def _issue_session(self) -> str:
        with self._lock:
            self.logins += 1
            session = f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(24)}"
            if not self._issue_dead_sessions:
                self._sessions.add(session)
            return session

    @staticmethod
    def _soap_fault(code: str, message: str) -> Response:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:sf="urn:fault.partner.soap.sforce.com" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
            f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {message}</faultstring>"
            f'<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}'
            f"</sf:exceptionCode><sf:exceptionMessage>{message}</sf:exceptionMessage>"
            "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        )
        return Response(500, body, content_type="text/xml; charset=utf-8")

    # -- records: lookup, values, saves ----------------------------------------------------
    def _canonical(self, sobject: str, name: str) -> str | None:
        lowered = name.lower()
        return next((n for n in self.schema.get(sobject, {}) if n.lower() == lowered), None)

    def _find(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        full = id18(record_id) if len(record_id) == 15 else record_id
        return self.records.get(sobject, {}).get(full)

    @staticmethod
    def _json_record(
        sobject: str, record: dict[str, Any], names: Sequence[str | None], version: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "attributes": {
                "type": sobject,
                "url": f"/services/data/v{version}/sobjects/{sobject}/{record['Id']}",
            }
        }
        for name in names:
            if name is not None:
                body[name] = record.get(name)
        return body

    def _json_values(self, sobject: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Deserialise JSON values by field type; unknown fields pass through to _save."""
        out: dict[str, Any] = {}
        for name, value in fields.items():
            canonical = self._canonical(sobject, name)
            spec = self.schema[sobject].get(canonical or "")
            out[canonical or name] = value if spec is None else self._typed(spec, value, name)
        return out

    def _csv_value(self, sobject: str, name: str, raw: str, column: int) -> Any:
        spec = self.schema[sobject][name]
        if raw == "#N/A":
            return None
        try:
            return self._typed(spec, raw, name)
        except _BadValue:
            raise _Rejected(
                "INVALID_FIELD",
                f"Failed to deserialize field at col {column + 1}. "
                f"Due to, '{raw}' is not a valid value for the type "
                f"{spec['soapType']}",
                [name],
            ) from None

    @staticmethod
    def _typed(spec: dict[str, Any], value: Any, name: str) -> Any:
        kind = spec["type"]
        bad = _BadValue(
            f"Cannot deserialize instance of {spec['soapType'].split(':')[-1]} from "
            f"{type(value).__name__.upper()} value {value} or request may be missing a required "
            f"field at [line:1, column:1] (field {name})"
        )
        if value is None:
            return None
        if kind in NUMBER_TYPES:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise bad
            try:
                number = float(value)
            except ValueError:
                raise bad from None
            if kind == "int":
                return int(number)
            # Salesforce stores a number at its field's scale: 0.33333 in Number(5,4) is 0.3333
            return round(number, spec["scale"]) if spec["precision"] else number
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in {"true", "false"}:
                return value.lower() == "true"
            raise bad
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise bad
        text = str(value)
        try:
            if kind == "date":
                return date.fromisoformat(text[:10]).isoformat()
            if kind == "datetime":
                return sf_datetime(parse_datetime(text))
        except ValueError:
            raise bad from None
        return text

    def _save(self, sobject: str, record_id: str, values: dict[str, Any]) -> str:
        """Validate and apply one record's update; raise :class:`_Rejected` like a SaveResult."""
        if not self._is_id_of(sobject, record_id):
            raise _Rejected(
                "MALFORMED_ID", f"{sobject} ID: id value of incorrect type: {record_id}", ["Id"]
            )
        record = self._live(sobject, record_id)
        if sobject == "Lead" and record["IsConverted"]:
            raise _Rejected("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        self._check_values(sobject, values, record)
        record.update(values)
        self._derive(sobject, record)
        self._reindex(sobject, record)
        self._touch(record)
        return str(record["Id"])

    def _insert(self, sobject: str, values: dict[str, Any]) -> str:
        self._check_values(sobject, values, None)
        return self._create(sobject, values)

    def _upsert(
        self, sobject: str, key_field: str, key: str | None, values: dict[str, Any]
    ) -> tuple[str, bool]:
        """Update the one record whose external id is ``key``, or create it: (Id, created)."""
        if key is None or key == "":
            raise _Rejected("MISSING_ARGUMENT", f"{key_field} not specified", [key_field])
        matches = self._matching(sobject, key_field, key)
        if len(matches) > 1:
            label = self.schema[sobject][key_field]["label"]
            raise _Rejected(
                "DUPLICATE_EXTERNAL_ID",
                f"{label}: more than one record found for external id field: "
                f"[{', '.join(matches)}]",
                [key_field],
            )
        values = {**values, key_field: key}
        if matches:
            return self._save(sobject, matches[0], values), False
        return self._insert(sobject, values), True

    def _remove(self, record_id: str) -> str:
        """Delete one record of any object (the record id says which); its DeleteResult id."""
        sobject = next(
            (o for o in self.records if record_id.startswith(self.key_prefixes[o])), None
        )
        if sobject is None or not self._is_id_of(sobject, record_id):
            raise _Rejected("MALFORMED_ID", f"malformed id {record_id}")
        record = self._live(sobject, record_id)
        self._delete(sobject, record["Id"])
        return str(record["Id"])

    def _is_id_of(self, sobject: str, record_id: str) -> bool:
        return _well_formed(record_id) and record_id.startswith(self.key_prefixes[sobject])

    def _live(self, sobject: str, record_id: str) -> dict[str, Any]:
        record = self._find(sobject, record_id)
        if record is None:
            raise _Rejected("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if record["IsDeleted"]:
            raise _Rejected("ENTITY_IS_DELETED", "entity is deleted")
        return record

    def _matching(self, sobject: str, key_field: str, key: str) -> list[str]:
        """Ids of live records whose ``key_field`` equals ``key`` (with the field's casing)."""
        fold = self._folder(sobject, key_field)
        index = self._indexes.get((sobject, key_field))
        if index is None:
            index = self._indexes[(sobject, key_field)] = {}
            for record_id, record in self.records[sobject].items():
                if isinstance(record.get(key_field), str):
                    index.setdefault(fold(record[key_field]), {})[record_id] = None
        wanted = fold(key)
        return [
            record_id
            for record_id in index.get(wanted, {})
            if not (record := self.records[sobject][record_id])["IsDeleted"]
            and isinstance(record.get(key_field), str)
            and fold(record[key_field]) == wanted
        ]

    def _folder(self, sobject: str, name: str) -> Callable[[str], str]:
        cased = self.schema[sobject][name].get("caseSensitive", False)
        return (lambda v: v) if cased else str.lower

    def _reindex(self, sobject: str, record: dict[str, Any]) -> None:
        """Note a saved record's values in the indexes built so far (see ``_matching``)."""
        for (obj, name), index in self._indexes.items():
            if obj == sobject and isinstance(record.get(name), str):
                index.setdefault(self._folder(obj, name)(record[name]), {})[record["Id"]] = None

    def _check_values(
        self, sobject: str, values: dict[str, Any], record: dict[str, Any] | None
    ) -> None:
        """Raise the SaveResult error Salesforce gives for the first bad value (``record`` is
        None for an insert)."""
        for name, value in values.items():
            spec = self.schema[sobject].get(name)
            if spec is None:
                raise _Rejected(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}"
                )
            if not spec["createable" if record is None else "updateable"]:
                raise _Rejected(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {name}. Please check the security settings "
                    "of this field and verify that it is read/write for your profile or "
                    "permission set.",
                    [name],
                )
            if value is None:
                continue
            allowed = {p["value"] for p in spec["picklistValues"] if p["active"]}
            if spec["restrictedPicklist"] and value not in allowed:
                raise _Rejected(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{spec['label']}: bad value for restricted picklist field: {value}",
                    [name],
                )
            too_long = isinstance(value, str) and len(value) > spec["length"]
            if spec["type"] in TEXT_TYPES and too_long:
                raise _Rejected(
                    "STRING_TOO_LONG",
                    f"{spec['label']}: data value too large: "
                    f"{value[:40]} (max length={spec['length']})",
                    [name],
                )
            if spec["type"] in NUMBER_TYPES and spec["precision"]:
                self._check_number(spec, value)
            if spec["type"] == "reference":
                self._check_reference(spec, value)
            if spec["unique"]:
                self._check_unique(sobject, spec, value, record)

    @staticmethod
    def _check_number(spec: dict[str, Any], value: float) -> None:
        if abs(value) >= 10 ** (spec["precision"] - spec["scale"]):
            raise _Rejected(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{spec['label']}: value outside of valid range on numeric field: {value}",
                [spec["name"]],
            )

    def _check_reference(self, spec: dict[str, Any], value: str) -> None:
        """A lookup must name a live record of an object it may point to (Users are not
        modelled here, so lookups to them pass)."""
        targets = [t for t in spec["referenceTo"] if t in self.records]
        if len(targets) < len(spec["referenceTo"]):
            return
        problem = f"{spec['label']}: id value of incorrect type: {value}"
        if not _well_formed(value):
            raise _Rejected("MALFORMED_ID", problem, [spec["name"]])
        target = next((t for t in targets if self._is_id_of(t, value)), None)
        if target is None:
            raise _Rejected("FIELD_INTEGRITY_EXCEPTION", problem, [spec["name"]])
        try:
            self._live(target, value)
        except _Rejected as exc:
            raise _Rejected(exc.code, exc.message, [spec["name"]]) from None

    def _check_unique(
        self, sobject: str, spec: dict[str, Any], value: Any, record: dict[str, Any] | None
    ) -> None:
        name = spec["name"]
        own = record["Id"] if record is not None else None
        clash = next((i for i in self._matching(sobject, name, str(value)) if i != own), None)
        if clash is not None:
            raise _Rejected(
                "DUPLICATE_VALUE",
                f"duplicate value found: {name} duplicates value on record with id: {clash}",
                [],
            )

    @staticmethod
    def _derive(sobject: str, record: dict[str, Any]) -> None:
        """Fields Salesforce computes: Name of people, IsWon/IsClosed from the stage."""
        if sobject in {"Lead", "Contact"}:
            parts = [record.get("FirstName"), record.get("LastName")]
            record["Name"] = " ".join(p for p in parts if p) or None
        if sobject == "Opportunity" and record.get("StageName"):
            record["IsClosed"] = str(record["StageName"]).startswith("Closed")
            record["IsWon"] = record["StageName"] == "Closed Won"

    @staticmethod
    def _touch(record: dict[str, Any], at: datetime | None = None) -> None:
        now = at or datetime.now(UTC)
        previous = parse_datetime(record["SystemModstamp"])
        if now <= previous:
            now = previous + timedelta(milliseconds=1)
        record["LastModifiedDate"] = record["SystemModstamp"] = sf_datetime(now)
