"""What ``/campaign status`` shows: every figure of the report reaches the embed."""

from __future__ import annotations

from bot.models import Campaign, CampaignStatusReport, Character
from cogs._common import status_embed


def test_status_embed_shows_turn_mode_model_and_unsummarised_tokens() -> None:
    campaign = Campaign(id=1, guild_id=7, channel_id=70, title="The Sunken Crypt", setting="A drowned temple",
                        tone="grim", status="active", created_by=1, created_at=0.0, turn=12)
    aria = Character(id=1, campaign_id=1, player_id=101, player_name="ann", name="Aria", char_class="Rogue",
                     ancestry="Elf", hp=7, max_hp=10)
    report = CampaignStatusReport(campaign=campaign, party=(aria,), story_messages=48, pending_actions=2,
                                  summary_tokens=310, busy=True, turn_mode="mention", model="llama3",
                                  unsummarised_tokens=1875)
    fields = {f.name: f.value for f in status_embed(report).fields}
    assert fields["Turn"] == "12"
    assert fields["Party"] == "**Aria** (Elf Rogue, HP 7/10) — ann"
    assert fields["Story"] == "48 messages, summary 310 tokens, 1875 tokens not yet summarised"
    assert fields["Table"] == "turn mode `mention`, model `llama3`"
    assert fields["Waiting"] == "2 action(s) — the DM is writing"


def test_admins_see_how_often_the_guard_stepped_in() -> None:
    campaign = Campaign(id=1, guild_id=7, channel_id=70, title="T", setting="", tone="", status="active",
                        created_by=1, created_at=0.0)
    report = CampaignStatusReport(campaign=campaign, party=(), story_messages=0, pending_actions=0, summary_tokens=0,
                                  guard_interventions={"template": 3, "player_voice": 1})
    assert "Output guard (admins)" not in {f.name for f in status_embed(report).fields}
    fields = {f.name: f.value for f in status_embed(report, for_admin=True).fields}
    assert fields["Output guard (admins)"] == "player_voice 1, template 3"
