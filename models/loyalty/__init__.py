"""Loyalty (积分、等级、积分商城), layered bottom-up; each layer imports only the ones below it:

1. `rules`    levels and earning rules, the growth window (no ledger);
2. `standing` a member's standing (balance, level, expiring points, streak) derived from their
              postings, and its cache table `member_points` (valid until time changes it);
3. `ledger`   postings, award/spend/refund, expiry, check-in, growth and `level_of`, `require_balance`,
              and keeping each member's cached standing with their postings (`standing_of`);
4. `rewards`  the catalogue and vouchers: redeem, use, void, expire, the ledger keys they write;
5. `checks`   `verify_ledger` (the cache included);   6. `summary` `points_summary`, the points card.

Other modules import the public names from here (models inside the package's layers, to keep
the import graph of `models/` acyclic). tests/test_loyalty_layers.py holds the layering.
"""
from models.loyalty.rules import GROWTH_WINDOW, RULE_LABELS, EarningRule, Level  # noqa: F401
from models.loyalty.standing import EXPIRING_HORIZON, LevelInfo, MemberPoints, Standing  # noqa: F401
from models.loyalty.ledger import (  # noqa: F401
    MAX_ADJUSTMENT, CheckIn, Lot, NotEnoughPoints, PointsPosting, adjust, award, balance_of, check_in,
    checked_in_today, checkin_streak, collect_unstored, expire_due, expiring_soon, growth_aged_out, growth_of, history,
    level_of, lock_member, lock_members, lots_of, members_with_points_due, note_level_change, recache_standings,
    refresh_standing, refund, replay, require_balance, reverse_earnings, spend, spendable_balance, standing_of,
    store_standings, take_unstored,
)
from models.loyalty.rewards import (  # noqa: F401
    ALPHABET, CHECK_SYMBOLS, REWARD_KINDS, VOUCHER_STATES, Reward, RewardInput, RewardRefused, Voucher, check_symbol,
    format_code, new_code, normalise_code, redeem, redeem_key, redeem_refusal, refusal, save_reward, sweep_vouchers,
    use_voucher, void_key, void_refusal, void_voucher,
)
from models.loyalty.checks import verify_ledger  # noqa: F401
from models.loyalty.summary import points_summary  # noqa: F401
