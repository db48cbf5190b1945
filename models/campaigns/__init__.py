"""Campaigns: win-back (召回), safety recall (安全召回) and announcements, layered as
model → audience → editing / returns / report. The fan-out jobs that send them are
services/campaigns.py."""
from models.campaigns.audience import Audience  # noqa: F401
from models.campaigns.model import Campaign, CampaignTarget  # noqa: F401
