"""deploy/salesforce, the metadata package admins deploy, matches the object the emulator installs:
both come from adapters/salesforce/touchpoint_object.py, so they cannot drift apart."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from adapters.salesforce import touchpoint_object as tp
from adapters.salesforce.emulator import Emulator

PACKAGE = Path(__file__).resolve().parents[3] / "deploy" / "salesforce"
SOURCE = PACKAGE / "force-app" / "main" / "default"
NS = "{http://soap.sforce.com/2006/04/metadata}"
DESCRIBE_TYPES = {"Text": "string", "Lookup": "reference", "DateTime": "datetime",
                  "Number": "double", "Currency": "currency"}  # fmt: skip


def parse(path: Path) -> dict[str, Any]:
    """A metadata file as a dict: element name -> text, or a list of dicts when repeated."""
    return _children(ET.parse(path).getroot())


def _children(element: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in element:
        name = child.tag.removeprefix(NS)
        value: Any = _children(child) if len(child) else (child.text or "")
        if name in out:
            out[name] = [*out[name], value] if isinstance(out[name], list) else [out[name], value]
        else:
            out[name] = value
    return out


def installed_fields() -> dict[str, dict[str, Any]]:
    emulator = Emulator()
    emulator.install_touchpoint_object()
    return {n: f for n, f in emulator.schema[tp.OBJECT_NAME].items() if f["custom"]}


def test_every_file_is_well_formed_metadata() -> None:
    files = sorted(PACKAGE.rglob("*-meta.xml"))
    assert len(files) == len(tp.FIELDS) + 2  # the object, its fields, the permission set
    for path in files:
        root = ET.parse(path).getroot()  # raises on malformed XML
        assert root.tag.startswith(NS), path
    project = json.loads((PACKAGE / "sfdx-project.json").read_text())
    (directory,) = project["packageDirectories"]
    assert (PACKAGE / directory["path"]).is_dir() and directory["default"] is True


def test_object_file_matches_the_description() -> None:
    obj = parse(SOURCE / "objects" / tp.OBJECT_NAME / f"{tp.OBJECT_NAME}.object-meta.xml")
    assert (obj["label"], obj["pluralLabel"]) == (tp.LABEL, tp.PLURAL_LABEL)
    assert obj["nameField"] == {
        "displayFormat": tp.NAME_FORMAT,
        "label": tp.NAME_FIELD_LABEL,
        "trackHistory": "false",
        "type": "AutoNumber",
    }
    assert obj["deploymentStatus"] == "Deployed"


@pytest.mark.parametrize("spec", tp.FIELDS, ids=lambda spec: spec.name)
def test_field_file_matches_what_the_emulator_installs(spec: tp.CustomField) -> None:
    xml = parse(SOURCE / "objects" / tp.OBJECT_NAME / "fields" / f"{spec.name}.field-meta.xml")
    assert xml["fullName"] == spec.name and xml["type"] == spec.type
    assert xml["label"] == spec.label and xml["required"] == "false"
    described = installed_fields()[spec.name]
    assert described["type"] == DESCRIBE_TYPES[xml["type"]]
    assert described["label"] == xml["label"]
    if spec.type == "Text":
        assert int(xml["length"]) == spec.length == described["length"]
    if spec.type in {"Number", "Currency"}:
        assert int(xml["precision"]) == spec.precision == described["precision"]
        assert int(xml["scale"]) == spec.scale == described["scale"]
    if spec.type == "Lookup":
        assert xml["referenceTo"] == spec.reference_to
        assert described["referenceTo"] == [xml["referenceTo"]]
        assert xml["deleteConstraint"] == "SetNull"
        assert xml["relationshipName"] == spec.relationship_name
    for flag, key in (("externalId", "externalId"), ("unique", "unique"),
                      ("caseSensitive", "caseSensitive")):  # fmt: skip
        assert (xml.get(flag, "false") == "true") is described[key], flag


def test_no_field_only_on_one_side() -> None:
    on_disk = {
        p.name.removesuffix(".field-meta.xml")
        for p in (SOURCE / "objects" / tp.OBJECT_NAME / "fields").iterdir()
    }
    assert on_disk == set(installed_fields()) == set(tp.FIELDS_BY_NAME)


def test_permission_set_grants_the_object_and_every_field() -> None:
    perms = parse(SOURCE / "permissionsets" / f"{tp.PERMISSION_SET}.permissionset-meta.xml")
    assert perms["objectPermissions"] == {
        "allowCreate": "true",
        "allowDelete": "true",
        "allowEdit": "true",
        "allowRead": "true",
        "modifyAllRecords": "false",
        "object": tp.OBJECT_NAME,
        "viewAllRecords": "false",
    }
    granted = {p["field"]: (p["readable"], p["editable"]) for p in perms["fieldPermissions"]}
    assert granted == {f"{tp.OBJECT_NAME}.{name}": ("true", "true") for name in tp.FIELDS_BY_NAME}
