"""Admin pages of the loyalty programme: partners and stores, rewards, points adjustments, vouchers."""
