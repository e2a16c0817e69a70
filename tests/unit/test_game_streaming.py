"""Streamed narration in the core: what the guard lets the table see while the model writes
(``visible``), when the first message opens, and the turn pipeline streaming a reply, taking back a
preamble, stopping at a cut, failing halfway and retrying, with a scripted model and a recording
narrator (``RecordingNarrator(streaming=True)``)."""

from __future__ import annotations

from pathlib import Path

from bot.game.api import DMReply
from bot.game.errors import LOST_THREAD
from bot.game.guard import GuardContext
from bot.game.streaming import NarrationStream, StreamView, visible
from bot.llm.errors import ServiceUnavailable
from bot.llm.types import ChatResult, ToolCall, Usage
from tests.support.doubles import Broken, RecordingNarrator, RecordingStream, reply
from tests.unit.test_game_sessions import ANN, GM, WHERE, make_env, party_of

SECRET = "sk-live-0123456789abcdef"
CTX = GuardContext(names=("Aria", "ann", "Borin", "bob"), secrets=(SECRET,))


# --- visible: what may be shown of a reply being written -------------------------------------------
def test_a_word_being_written_is_held_until_it_ends() -> None:
    assert visible("The door creaks op", CTX) == StreamView("The door creaks", False)
    assert visible("The door creaks open.", CTX) == StreamView("The door creaks open.", False)
    assert visible("The door creaks open. ", CTX) == StreamView("The door creaks open.", False)


def test_a_line_that_may_become_a_players_label_is_held_and_a_label_stops_the_stream() -> None:
    assert visible("The hall is quiet.\nAri", CTX) == StreamView("The hall is quiet.", False)
    assert visible("The hall is quiet.\nAria steps into", CTX) == StreamView("The hall is quiet.", False)
    assert visible("The hall is quiet.\n[Borin (pl", CTX) == StreamView("The hall is quiet.", False)
    assert visible("The hall is quiet.\nAria: I draw my", CTX) == StreamView("The hall is quiet.", True)
    # 35 characters past the name, no colon: narration about Aria, shown
    line = "Aria steps into the dark and the torchlight dies"
    assert visible(f"The hall is quiet.\n{line}", CTX) == StreamView(
        "The hall is quiet.\nAria steps into the dark and the torchlight", False)
    # a generic label holds only while it could still be one
    assert visible("You step into the", CTX) == StreamView("You step into", False)
    assert visible("User: I open", CTX) == StreamView("", True)


def test_template_tokens_secrets_and_loops() -> None:
    assert visible("The door opens. <|im_", CTX) == StreamView("The door opens.", False)
    assert visible("The door opens.<|im_", CTX) == StreamView("The door opens.", False)
    assert visible("The door opens.<|im_end|>\nuser: I", CTX) == StreamView("The door opens.", True)
    assert visible("The runes spell sk-live-01", CTX) == StreamView("The runes spell", False)
    assert visible(f"The runes spell {SECRET} in fire", CTX) == StreamView("", True)
    assert visible("The wind howls. " * 4, CTX) == StreamView("The wind howls.", True)
    # a key shorter than the guard's minimum is ordinary text (local endpoints take any key, e.g. "abc")
    assert visible("The abcess on his arm swells and bursts", GuardContext(secrets=("abc",))) == StreamView(
        "The abcess on his arm swells and", False)


def test_a_cut_stops_the_stream_only_once_no_continuation_can_undo_it() -> None:
    drums = "The drums beat. The drums beat. The drums beat"
    assert visible(drums, CTX).stop is False  # "...beat faster" would be no loop
    assert visible(drums + " faster now.", CTX) == StreamView(f"{drums} faster now.", False)
    assert visible("The drums beat. " * 3, CTX).stop is True  # the third sentence has ended
    assert visible("The scroll reads:\n### Instruction", CTX).stop is False  # "### Instructions from..." is prose
    assert visible("The scroll reads:\n### Instructions from the guild", CTX).stop is False
    assert visible("The scroll reads:\n### Instruction: obey", CTX).stop is True


async def test_the_first_message_waits_for_a_sentence_or_32_characters() -> None:
    narrator = RecordingNarrator(streaming=True)
    stream = NarrationStream(narrator, DMReply(channel_id=1, text=""), CTX)
    assert await stream.feed("The ") is True
    assert await stream.feed("door creaks") is True
    assert narrator.streams == []
    assert await stream.feed(".") is True
    assert narrator.streams[0].texts == ["The door creaks."]
    long_line = NarrationStream(narrator, DMReply(channel_id=1, text=""), CTX)
    await long_line.feed("Somewhere far below the old")  # 27 whole characters: not yet
    assert len(narrator.streams) == 1
    await long_line.feed(" temple, ")  # 34 characters, no sentence end
    assert narrator.streams[1].texts == ["Somewhere far below the old temple,"]


# --- the pipeline, streaming ------------------------------------------------------------------------
TEXT = "The door creaks open. Cold air rolls out of the crypt, smelling of wet stone and old bones."


async def test_a_streamed_reply_grows_in_place_and_ends_as_the_stored_reply(tmp_path: Path) -> None:
    async with make_env(tmp_path, streaming=True) as env:
        await party_of(env, ANN)
        env.model.push(reply(TEXT))
        await env.act(ANN, "I open the door")
        await env.advance(6)
        [stream] = env.narrator.streams
        assert "".join(env.model.streamed) == TEXT
        assert stream.texts[0] == "The door creaks open."
        assert all(TEXT.startswith(t) for t in stream.texts)
        assert [len(t) for t in stream.texts] == sorted({len(t) for t in stream.texts})  # only grows
        assert stream.finished is not None and stream.finished.text == TEXT and stream.finished.turn == 1
        assert stream.head.answered_message_ids == (1001,) and stream.head.kind == "turn"
        assert env.narrator.replies == [stream.finished]  # delivered once, by the stream
        story = [m for m in await env.store.story.transcript(env.session().campaign.id) if m.role != "system"]
        assert [(m.role, m.content) for m in story] == [("player", "I open the door"), ("dm", TEXT)]


async def test_text_before_a_tool_call_is_taken_back_and_the_dice_come_with_the_narration(tmp_path: Path) -> None:
    async with make_env(tmp_path, streaming=True) as env:
        await party_of(env, ANN)
        preamble = ChatResult(text="Let me roll for that.", tool_calls=(ToolCall(
            "call_1", "roll_dice", '{"expression": "1d20+5", "reason": "Stealth", "character": "Aria"}'),),
            finish_reason="tool_calls", usage=Usage(100, 20), model="gpt-4o-mini")
        env.model.push(preamble, reply("You slip past the sleeping ogre without a sound."))
        await env.act(ANN, "I sneak past the ogre")
        await env.advance(6)
        [stream] = env.narrator.streams
        assert stream.texts[0] == "Let me roll for that." and stream.shows[0][1] == ()
        assert stream.texts[1] == ""  # taken back when the tool call came
        later = stream.shows[2:]
        assert later and all(len(rolls) == 1 and rolls[0].reason == "Stealth" for _, rolls in later)
        assert stream.finished is not None and len(stream.finished.rolls) == 1
        assert stream.finished.text.startswith("You slip past the sleeping ogre without a sound.")


async def test_a_stream_that_turns_into_a_players_voice_stops_there(tmp_path: Path) -> None:
    async with make_env(tmp_path, streaming=True) as env:
        await party_of(env, ANN)
        text = ("The goblin shrieks and flees into the dark.\nAria: I chase it down the corridor!\n"
                "Borin: I follow her with my axe raised.")
        env.model.push(reply(text))
        await env.act(ANN, "I shout at the goblin")
        await env.advance(6)
        [stream] = env.narrator.streams
        streamed = "".join(env.model.streamed)
        assert "Aria:" in streamed and "Borin" not in streamed  # the model's stream was stopped
        assert not any("Aria:" in t for t in stream.texts)
        assert stream.finished is not None and stream.finished.text == "The goblin shrieks and flees into the dark."
        assert await env.store.guard.counts(env.session().campaign.id) == {"player_voice": 1}


async def test_a_stream_that_fails_halfway_becomes_the_notice_and_the_action_waits(tmp_path: Path) -> None:
    async with make_env(tmp_path, streaming=True) as env:
        await party_of(env, ANN)
        partial = "The bridge sways under your feet as the old ropes begin to"
        env.model.push(Broken(partial, ServiceUnavailable("connection reset")))
        await env.act(ANN, "I cross the bridge")
        await env.advance(6)
        [stream] = env.narrator.streams
        assert stream.texts[0] == "The bridge sways under your feet"  # 32 characters: opened
        assert all(partial.startswith(t) for t in stream.texts)
        assert stream.finished is None
        assert stream.abandoned == f"{LOST_THREAD} {ServiceUnavailable.player_message_default}"
        assert [n.text for n in env.narrator.notices] == [stream.abandoned]  # told once, in place
        campaign_id = env.session().campaign.id
        assert [m.content for m in await env.store.story.pending(campaign_id)] == ["I cross the bridge"]
        assert [m.role for m in await env.store.story.transcript(campaign_id)] == ["system", "player"]
        env.model.push(reply("You reach the far side as the bridge falls."))
        await env.act(ANN, "I run!")
        await env.advance(6)
        assert [r.answered_message_ids for r in env.narrator.turns] == [(1001, 1002)]
        assert await env.store.story.pending(campaign_id) == []


async def test_a_retry_streams_and_a_server_can_turn_streaming_off(tmp_path: Path) -> None:
    async with make_env(tmp_path, streaming=True) as env:
        await party_of(env, ANN)
        env.model.push(reply(TEXT), reply("The door stays shut; something heavy leans on it from within."))
        await env.act(ANN, "I open the door")
        await env.advance(6)
        await env.game.retry(WHERE, GM)
        first, again = env.narrator.streams
        assert again.head.kind == "retry" and again.finished is not None and again.finished.kind == "retry"
        assert again.finished.text == "The door stays shut; something heavy leans on it from within."
        await env.game.set_config(WHERE.guild_id or 0, GM, "stream_replies", "off")
        env.model.push(reply("Dust falls from the ceiling."))
        await env.act(ANN, "I push harder")
        await env.advance(6)
        assert len(env.narrator.streams) == 2
        assert env.narrator.turns[-1].text == "Dust falls from the ceiling."


async def test_a_reply_the_guard_fails_is_asked_again_and_only_the_second_is_shown(tmp_path: Path) -> None:
    async with make_env(tmp_path, streaming=True) as env:
        await party_of(env, ANN)
        env.model.push(reply("Aria: I kick the door open and charge in!"), reply("The door bursts open."))
        await env.act(ANN, "I kick the door")
        await env.advance(6)
        [stream] = env.narrator.streams
        assert stream.texts == ["The door bursts open."]
        assert stream.finished is not None and stream.finished.text == "The door bursts open."


async def test_a_repeated_opening_streams_whole_as_the_unstreamed_reply_would(tmp_path: Path) -> None:
    text = "The drums beat. The drums beat. The drums beat faster now, and the torches gutter."
    async with make_env(tmp_path, streaming=True) as env:
        await party_of(env, ANN)
        env.model.push(reply(text))
        await env.act(ANN, "I listen")
        await env.advance(6)
        [stream] = env.narrator.streams
        assert "".join(env.model.streamed) == text and stream.finished is not None and stream.finished.text == text


class RefusingStream(RecordingNarrator):
    """A narrator whose streamed messages cannot be edited into a notice (the platform refuses)."""

    def stream(self, head: DMReply) -> RecordingStream | None:
        stream = super().stream(head)

        async def refuse(text: str) -> bool:
            return False

        if stream is not None:
            stream.abandon = refuse  # type: ignore[method-assign]
        return stream


async def test_when_the_partial_message_cannot_become_the_notice_the_notice_is_sent_anew(tmp_path: Path) -> None:
    async with make_env(tmp_path, streaming=True) as env:
        env.game.pipeline.narrator = env.narrator = refusing = RefusingStream(streaming=True)
        await party_of(env, ANN)
        env.model.push(Broken("The bridge sways under your feet as the old ropes begin to", ServiceUnavailable("x")))
        await env.act(ANN, "I cross the bridge")
        await env.advance(6)
        assert [n.text for n in refusing.notices] == [ServiceUnavailable.player_message_default]
