"""Hooks of the repairs pack (see docs/hooks.md)."""

from engine.pack_api import ValidationFailed


def normalise_serial(context):
    """Serial numbers are compared as written on the label: no spaces, upper case."""
    serial = context.values.get("serial")
    if serial:
        context.values["serial"] = serial.replace(" ", "").upper()


def copy_customer_phone(context):
    """The order keeps the phone to call, read from its device when the device is chosen."""
    if context.changed("device") and context.values.get("device"):
        device = context.records.get(context.actor, "device", context.values["device"],
                                     conn=context.conn)
        context.values["customer_phone"] = device["owner_phone"]


def take_parts_from_stock(context):
    """When a repair is finished, the parts it used leave the stock — all or none."""
    if context.values["stage"] != "ready":
        return
    short = []
    for line in context.values["parts"]:
        part = context.records.get(context.actor, "part", line["part"], conn=context.conn)
        left = part["in_stock"] - line["quantity"]
        if left < 0:
            short.append(f"{part['name']}: {part['in_stock']} in stock, {line['quantity']} used")
            continue
        context.records.update(context.actor, "part", part["id"], {"in_stock": left},
                               conn=context.conn)
    if short:
        raise ValidationFailed({"parts": short}, "Not enough parts in stock.")
