from customers.management.commands.import_csv import Command as ImportCsv


class Command(ImportCsv):
    help = "Import the online-retail sample layout (customers, products, orders): import_csv --format retail."

    def handle(self, *args, **options):
        options["file_format"] = "retail"
        return super().handle(*args, **options)
