"""The receivables ageing service_sales reports use, from the receivables block.

Instalments and collections are the receivables pack's entities
(docs/packs/building_blocks.md); this name stays for the pack's reports and
scripts that import it.
"""

from packs.receivables.ageing import (
    BUCKETS,
    CURRENT,
    Instalment,
    PaymentReminder,
    ageing,
    bucket_of,
    instalments,
    payment_reminders,
)

__all__ = ["BUCKETS", "CURRENT", "Instalment", "PaymentReminder", "ageing", "bucket_of",
           "instalments", "payment_reminders"]
