"""The member's vouchers: list, detail with QR, PDF download."""
