"""Loyalty (积分、等级、积分商城), layered bottom-up; each layer imports only the ones below it:

1. `rules`   levels and earning rules, the growth window (no ledger);
2. `ledger`  postings, award/spend/refund, expiry, check-in, growth and `level_of`, `require_balance`;
3. `rewards` the catalogue and vouchers: redeem, use, void, expire, the ledger keys they write;
4. `checks`  `verify_ledger`;   5. `summary` `points_summary`, the points card.

Other modules import the public names from here (models inside the package's layers, to keep
the import graph of `models/` acyclic). tests/test_loyalty_layers.py holds the layering.
"""
from models.loyalty.rules import GROWTH_WINDOW, RULE_LABELS, EarningRule, Level  # noqa: F401
from models.loyalty.ledger import (  # noqa: F401
    MAX_ADJUSTMENT, CheckIn, LevelInfo, Lot, NotEnoughPoints, PointsPosting, adjust, award, balance_of, check_in,
    checked_in_today, checkin_streak, expire_due, expiring_soon, growth_aged_out, growth_of, history, level_of,
    lock_member, lock_members, lots_of, members_with_points_due, note_level_change, refund, replay, require_balance,
    reverse_earnings, spend, spendable_balance,
)
from models.loyalty.rewards import (  # noqa: F401
    ALPHABET, CHECK_SYMBOLS, REWARD_KINDS, VOUCHER_STATES, Reward, RewardInput, RewardRefused, Voucher, check_symbol,
    format_code, new_code, normalise_code, redeem, redeem_key, redeem_refusal, refusal, save_reward, sweep_vouchers,
    use_voucher, void_key, void_refusal, void_voucher,
)
from models.loyalty.checks import verify_ledger  # noqa: F401
from models.loyalty.summary import points_summary  # noqa: F401
