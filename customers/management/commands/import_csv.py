import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from customers.importers import import_file
from customers.importers.base import FORMATS, KINDS


class Command(BaseCommand):
    help = (
        "Import customers, products or orders from a CSV file (all or nothing unless --partial). "
        "--format retail reads the online-retail sample layout and imports all three."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--kind", choices=KINDS, help="Required for the standard format")
        parser.add_argument("--format", dest="file_format", choices=FORMATS, default="standard")
        parser.add_argument(
            "--partial", action="store_true", help="Keep the valid rows and report the others"
        )
        parser.add_argument(
            "--demo-contacts",
            action="store_true",
            help="Retail format: give each customer an @example.com address and demo email consent",
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON")

    def handle(self, *args, file, kind, file_format, partial, demo_contacts, json: bool, **options):
        if file_format == "standard" and not kind:
            raise CommandError("--kind is required for the standard format")
        if not file.exists():
            raise CommandError(f"No such file: {file}")
        with file.open("rb") as stream:
            report = import_file(
                stream, kind=kind or "", partial=partial, file_format=file_format, demo_contacts=demo_contacts
            )
        body = report.as_dict()
        if json:
            self.stdout.write(_json_dumps(body))
        else:
            self.stdout.write(render_report(body))
        if not report.committed:
            raise CommandError(
                f"Nothing imported: {len(report.errors)} bad row(s). Fix them or use --partial."
            )


def _json_dumps(body) -> str:
    return json.dumps(body, indent=2, sort_keys=True)


def render_report(body: dict) -> str:
    lines = [f"Import of {body['kind']}: {'committed' if body['committed'] else 'NOT committed'}"]
    lines.append(f"  rows read: {body['rows_read']}")
    for name in ("customers", "products", "orders"):
        if name in body:
            counts = body[name]
            lines.append(
                f"  {name}: {counts['created']} created, {counts['updated']} updated, "
                f"{counts['unchanged']} unchanged, {counts['failed']} failed"
            )
    if body["dropped"]:
        lines.append(f"  dropped lines: {body['dropped_total']}")
        lines.extend(f"    {reason}: {count}" for reason, count in body["dropped"].items())
    for error in body["errors"][:200]:
        lines.append(f"  line {error['line']}: {error['field']}: {error['message']}")
    if len(body["errors"]) > 200:
        lines.append(f"  … and {len(body['errors']) - 200} more")
    return "\n".join(lines)
