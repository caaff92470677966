"""The official VDA 5050 2.1.0 JSON schemas (MIT, see LICENSE.md), unchanged, so a vehicle can
validate what it receives without anything outside the installed package."""
