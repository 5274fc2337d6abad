"""The Discord bot: `!transcribe`, automatic voice messages, `/transcribe` and the "Transcribe" message command.

Built on discord.py's Client and CommandTree, started inside our own event loop (`async with client:
await client.start(token)` in a task we own). Work goes through `service.submit()`, so accepted files
survive a restart; this object is also the service's Delivery for Discord: it re-downloads media from
the journaled reference and sends the answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import aiohttp
import discord
import yarl
from aiohttp import web
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chatscribe.adapters import discord as adapter
from chatscribe.bots.discord_delivery import DiscordDelivery, redact_tokens
from chatscribe.core import (
    ENV_FILE,
    ChatscribeError,
    ConfigError,
    ConversationSettings,
    Fetch,
    Forgotten,
    Sentence,
    SettingChange,
    TranscribeOptions,
    Transcript,
    joined,
    localize,
    parse_setting,
    reply_language,
    resolve_language,
    sentences,
)
from chatscribe.core.jobs import Job, ProgressUpdate, Receipt

if TYPE_CHECKING:
    from chatscribe.core import TranscriptionService

log = logging.getLogger(__name__)

DISCORD_API = "https://discord.com/api/v10"
HISTORY_LIMIT = 20
AUTO_ANSWERS = {"on": Sentence("Voice messages in this server will be transcribed automatically."),
                "off": Sentence("Voice messages in this server will only be transcribed on request.")}
CHANNEL_AUTO_ANSWERS = {"on": Sentence("Voice messages in this channel will be transcribed automatically."),
                        "off": Sentence("Voice messages in this channel will only be transcribed on request.")}
_LEGACY_KEYS = {"auto_voice": "auto", "file_format": "format"}
"""Where servers' settings were stored before every platform shared core/settings.py."""
INTERNAL_ERROR = sentences.WENT_WRONG
NOT_ALLOWED = Sentence("Only people with the Manage Server permission can change that.")
SERVER_NOT_ALLOWED = Sentence("Sorry, this bot is private: it only works in the servers its operator allowed.")
NO_HISTORY = Sentence("I can't read this channel's earlier messages (Read Message History permission): attach the "
                      "file to the command or use the Transcribe command on its message.")
CHANNEL_RESET = Sentence("This channel follows the server's settings again.")
DESCRIPTION_LIMIT = 100
"""Discord refuses a command or option description longer than this (a translation too)."""


class DiscordSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISCORD_", env_file=ENV_FILE, env_file_encoding="utf-8",
                                      extra="ignore")

    bot_token: SecretStr = SecretStr("")
    """Developer Portal -> your application -> Bot -> Reset Token."""
    command_prefix: str = "!"
    """Prefix of the text command: `!transcribe`."""
    guild_ids: str = ""
    """Comma-separated server ids to sync the slash commands to at once; empty syncs them globally (slower)."""
    allowed_guilds: str = ""
    """Comma-separated server ids where the bot works; empty = every server it is in, and direct messages.
    Elsewhere voice messages are ignored and commands get a one-line refusal."""
    api_base_url: str = DISCORD_API
    """REST base; the gateway is then asked of `GET /gateway/bot` on it (proxies, tests)."""
    status_after_s: float = Field(default=15, ge=0)
    """Show a "Transcribing… 40%" status reply when the answer is expected to take longer than this."""

    @field_validator("guild_ids", "allowed_guilds")
    @classmethod
    def _check_ids(cls, value: str) -> str:
        if any(not part.strip().isdigit() for part in value.split(",") if part.strip()):
            raise ValueError("expected comma-separated numeric server ids")
        return value

    @field_validator("command_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value.strip()):
            raise ValueError("expected a non-empty prefix without spaces, e.g. !")
        return value.strip()

    @property
    def guild_id_list(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.guild_ids.split(",") if part.strip())

    def allowed(self, guild_id: int | None) -> bool:
        """With DISCORD_ALLOWED_GUILDS set, only those servers (direct messages belong to none of them)."""
        allowed = {int(part) for part in self.allowed_guilds.split(",") if part.strip()}
        return not allowed or guild_id in allowed


class _Client(discord.Client):
    def __init__(self, bot: DiscordBot, *, guild_ready_timeout: float) -> None:
        # Voice messages are files; the bot never joins a voice channel, so its codecs are not needed.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: `!transcribe` is read from the message text
        # Replies name people and transcripts may say "@everyone": nobody is ever pinged.
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none(),
                         guild_ready_timeout=guild_ready_timeout, max_messages=None)
        self.tree = app_commands.CommandTree(self)
        self._bot = bot

    async def setup_hook(self) -> None:
        await self._bot._setup()

    async def on_message(self, message: discord.Message) -> None:
        await self._bot._on_message(message)


class DiscordBot:
    platform = adapter.PLATFORM

    def __init__(self, *, service: TranscriptionService, settings: DiscordSettings,
                 guild_ready_timeout: float = 2.0) -> None:
        self.service = service
        self.settings = settings
        self._guild_ready_timeout = guild_ready_timeout
        self._client: _Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._delivery = DiscordDelivery(client=self._require_client, service=service,
                                         status_after_s=settings.status_after_s)

    # -- Bot protocol ------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return []  # everything arrives over the gateway

    async def start(self) -> None:
        redact_tokens(self.settings.bot_token.get_secret_value())
        # discord.py builds every REST URL (webhooks included) from this class attribute.
        Route.BASE = self.settings.api_base_url.rstrip("/")
        await self._delivery.discord.open()
        self._client = _Client(self, guild_ready_timeout=self._guild_ready_timeout)
        self.service.register(self.platform, self)
        self._task = asyncio.create_task(self._run(self._client), name="discord")
        ready = asyncio.create_task(self._client.wait_until_ready())
        await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            ready.cancel()
            await self._delivery.discord.close()
            failure = self._task.exception()
            raise _explain(failure, self.settings.api_base_url) from failure
        self._task.add_done_callback(_log_stop)
        log.info("Discord bot connected as %s", self._client.user)

    async def stop(self) -> None:
        self._delivery.stop()
        if self._client is not None:
            await self._client.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self._delivery.discord.close()
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = _ORIGINAL_BASE, _ORIGINAL_GATEWAY

    def not_ready(self) -> str | None:
        if self._client is None or self._client.is_closed():
            return "discord: not connected"
        if not self._client.is_ready():
            return "discord: connecting to the gateway"
        return None

    async def _run(self, client: _Client) -> None:
        async with client:
            await client.start(self.settings.bot_token.get_secret_value())

    async def _setup(self) -> None:
        client = self._require_client()
        # A plain Client connects to Discord's fixed gateway; ask the configured REST base instead.
        _, url, _ = await client.http.get_bot_gateway()
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        await client.tree.set_translator(CatalogTranslator())
        self._add_commands(client.tree)
        try:
            await self._sync_commands(client.tree)
        except discord.HTTPException as exc:  # `!transcribe` and voice messages still work without them
            log.error("could not register the slash commands (HTTP %s): invite the bot with the "
                      "applications.commands scope, or check DISCORD_GUILD_IDS", exc.status)

    async def _sync_commands(self, tree: app_commands.CommandTree[_Client]) -> None:
        if not self.settings.guild_id_list:
            await tree.sync()  # global commands can take up to an hour to appear
            return
        for guild_id in self.settings.guild_id_list:
            guild = discord.Object(guild_id)
            tree.copy_global_to(guild=guild)
            await tree.sync(guild=guild)

    def _require_client(self) -> _Client:
        if self._client is None:
            raise RuntimeError("the Discord bot is not started")
        return self._client

    # -- commands ----------------------------------------------------------------------------------

    def _add_commands(self, tree: app_commands.CommandTree[_Client]) -> None:
        # Descriptions are Sentences: the tree's translator (CatalogTranslator) gives Discord each language's.
        @tree.command(name="transcribe", description=Sentence("Transcribe an audio or video file"))
        @app_commands.describe(file=Sentence("The recording (default: the latest one in this channel)"),
                               language=Sentence("Spoken language, e.g. en or German (default: detect)"),
                               translate=Sentence("Translate into English"),
                               ephemeral=Sentence("Only you see the result"))
        async def transcribe(interaction: discord.Interaction, file: discord.Attachment | None = None,
                             language: str | None = None, translate: bool | None = None,
                             ephemeral: bool = False) -> None:
            await self._on_slash(interaction, file, language, translate, ephemeral)

        @tree.context_menu(name="Transcribe")
        async def transcribe_message(interaction: discord.Interaction, message: discord.Message) -> None:
            await self._on_context_menu(interaction, message)

        # Everyone sees the settings; changing them is checked per call (Manage Server), so the group is
        # not hidden behind default_permissions.
        group = app_commands.Group(name="chatscribe", description=Sentence("chatscribe settings for this server"),
                                   guild_only=True)
        channel = app_commands.Group(name="channel", parent=group,
                                     description=Sentence("Settings for this channel only, over the server's"))
        for scope in (group, channel):
            self._add_setting_commands(scope, per_channel=scope is channel)

        @group.command(name="settings", description=Sentence("Show the settings in force in this channel"))
        async def show(interaction: discord.Interaction) -> None:
            await self._show_settings(interaction)

        @channel.command(name="reset", description=Sentence("Let this channel follow the server's settings again"))
        async def reset(interaction: discord.Interaction) -> None:
            await self._reset_channel(interaction)

        @group.command(name="forget", description=Sentence("Delete what chatscribe keeps about this server"))
        async def forget(interaction: discord.Interaction) -> None:
            await self._forget(interaction)

        tree.add_command(group)
        tree.error(self._on_app_command_error)

    def _add_setting_commands(self, group: app_commands.Group, *, per_channel: bool) -> None:
        """`/chatscribe <setting> <value>` for the server, `/chatscribe channel <setting> <value>` for a channel."""
        where = Sentence("this channel") if per_channel else Sentence("this server")

        async def change(interaction: discord.Interaction, key: str, typed: str) -> None:
            await self._change_setting(interaction, key, typed, per_channel=per_channel)

        @group.command(name="language",
                       description=Sentence("Spoken language in {where}: auto, a code (de) or a name", where=where))
        @app_commands.describe(value=Sentence("auto, a code such as de, or an English name such as German"))
        async def language(interaction: discord.Interaction, value: str) -> None:
            await change(interaction, "language", value)

        @group.command(name="translate",
                       description=Sentence("Answer in English whatever was spoken in {where}", where=where))
        async def translate(interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
            await change(interaction, "translate", state)

        @group.command(name="vocab",
                       description=Sentence("Names and terms to expect in {where} (empty clears them)", where=where))
        async def vocab(interaction: discord.Interaction, terms: str = "") -> None:
            await change(interaction, "vocab", terms)

        @group.command(name="format", description=Sentence("File type for transcripts too long for a few messages"))
        async def file_format(interaction: discord.Interaction, kind: Literal["txt", "srt", "vtt"]) -> None:
            await change(interaction, "format", kind)

        @group.command(name="timestamps",
                       description=Sentence("Times of the passages in the text in {where}", where=where))
        async def timestamps(interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
            await change(interaction, "timestamps", state)

        @group.command(name="speakers",
                       description=Sentence("Who said what, in recordings with several voices, in {where}",
                                            where=where))
        async def speakers(interaction: discord.Interaction, state: Literal["on", "off", "auto"]) -> None:
            await change(interaction, "speakers", state)

        @group.command(name="auto",
                       description=Sentence("Transcribe voice messages automatically in {where}", where=where))
        async def auto(interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
            await change(interaction, "auto", state)

        @group.command(name="replies",
                       description=Sentence("Language of my replies in {where}: auto (each person's) or a code",
                                            where=where))
        @app_commands.describe(value=Sentence("auto, or one of en, de, es, fr, it, pt, ru, uk"))
        async def replies(interaction: discord.Interaction, value: str) -> None:
            await change(interaction, "replies", value)

    async def _on_message(self, message: discord.Message) -> None:
        if message.author.bot:  # bots, this one included, never trigger work
            return
        try:
            command = adapter.parse_command(message.content, self.settings.command_prefix)
            if not self.settings.allowed(message.guild.id if message.guild else None):
                # As Telegram's allowed chats: a request gets one sentence, the rest of the server is ignored.
                if command is not None or (message.guild is None and adapter.media_attachments(message)):
                    await self._reply(message, SERVER_NOT_ALLOWED)
                return
            if command is not None:
                options = await self._options(message.guild, message.channel.id, command.language,
                                              command.translate or None)
                await self._on_text_command(message, options)
            elif adapter.is_voice_message(message):
                chosen = await self._settings(message.guild, message.channel.id)
                if chosen.auto_or(True):
                    await self._submit_all(message, adapter.media_attachments(message), message,
                                           chosen.options(self.service.settings.expected_languages), voice=True)
        except ChatscribeError as exc:
            await self._reply(message, exc.user_message)
        except Exception:
            log.exception("message %s could not be handled", message.id)
            await self._reply(message, INTERNAL_ERROR)

    async def _on_text_command(self, message: discord.Message, options: TranscribeOptions) -> None:
        source = await self._media_message(message)
        if source is None:
            await self._reply(message, adapter.NOTHING_FOUND)
            return
        await self._submit_all(source, adapter.media_attachments(source), message, options)

    async def _media_message(self, message: discord.Message) -> discord.Message | None:
        """The command's own attachments, else the replied-to message's, else the latest with media."""
        if adapter.media_attachments(message):
            return message
        if message.reference is not None and message.reference.message_id is not None:
            replied = message.reference.resolved
            if not isinstance(replied, discord.Message):  # not in the event (old message): ask for it
                try:
                    replied = await message.channel.fetch_message(message.reference.message_id)
                except discord.NotFound:
                    return None
            return replied if adapter.media_attachments(replied) else None
        return await _latest_media(message.channel, before=message)

    async def _refused(self, interaction: discord.Interaction) -> bool:
        """True (and answered privately) when the interaction comes from a server not in DISCORD_ALLOWED_GUILDS."""
        if self.settings.allowed(interaction.guild_id):
            return False
        await interaction.response.send_message(await self._say(interaction, SERVER_NOT_ALLOWED), ephemeral=True)
        return True

    async def _on_slash(self, interaction: discord.Interaction, file: discord.Attachment | None,
                        language: str | None, translate: bool | None, ephemeral: bool) -> None:
        """`language` and `translate`, when given, override the settings here for this file only."""
        if await self._refused(interaction):
            return
        try:
            options = await self._options(interaction.guild, interaction.channel_id, language, translate)
        except ChatscribeError as exc:  # an unknown language: one sentence, only for the one who asked
            await interaction.response.send_message(await self._say(interaction, exc.user_message), ephemeral=True)
            return
        await interaction.response.defer(thinking=True, ephemeral=ephemeral)
        if file is not None:
            items: list[tuple[discord.Attachment, str | None]] = [(file, None)]
            source_id = None
        else:
            channel = interaction.channel
            found = await _latest_media(channel) if isinstance(channel, discord.abc.Messageable) else None
            if found is None:
                await interaction.followup.send(await self._say(interaction, adapter.NOTHING_FOUND), ephemeral=True)
                return
            items, source_id = adapter.labelled(adapter.media_attachments(found)), str(found.id)
        await self._submit_interaction(interaction, items, source_id, options, ephemeral)

    async def _on_context_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        if await self._refused(interaction):
            return
        await interaction.response.defer(thinking=True)
        attachments = adapter.media_attachments(message)
        if not attachments:
            await interaction.followup.send(await self._say(interaction, adapter.NOTHING_FOUND), ephemeral=True)
            return
        chosen = await self._settings(interaction.guild, interaction.channel_id)
        await self._submit_interaction(interaction, adapter.labelled(attachments), str(message.id),
                                       chosen.options(self.service.settings.expected_languages), ephemeral=False)

    async def _may_change(self, interaction: discord.Interaction) -> bool:
        """Manage Server changes settings; anyone else is told so, privately."""
        if await self._refused(interaction):
            return False
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            await interaction.response.send_message(await self._say(interaction, NOT_ALLOWED), ephemeral=True)
            return False
        return True

    async def _change_setting(self, interaction: discord.Interaction, key: str, typed: str, *,
                              per_channel: bool) -> None:
        if not await self._may_change(interaction):
            return
        try:
            change = parse_setting(key, typed, offered=self.service.settings.expected_languages)
        except ChatscribeError as exc:  # a value it does not take: the setting stays as it was
            await interaction.response.send_message(await self._say(interaction, exc.user_message), ephemeral=True)
            return
        scope = str(interaction.channel_id if per_channel else interaction.guild_id)
        await asyncio.to_thread(self.service.preferences.change, self.platform, scope, change)
        await interaction.response.send_message(await self._say(interaction, _confirmation(change,
                                                                                           per_channel=per_channel)))

    async def _reset_channel(self, interaction: discord.Interaction) -> None:
        if not await self._may_change(interaction):
            return
        await asyncio.to_thread(self.service.preferences.forget, self.platform, str(interaction.channel_id))
        await interaction.response.send_message(await self._say(interaction, CHANNEL_RESET))

    async def _show_settings(self, interaction: discord.Interaction) -> None:
        if await self._refused(interaction):
            return
        chosen = await self._settings(interaction.guild, interaction.channel_id)
        own = await asyncio.to_thread(self.service.preferences.get_all, self.platform, str(interaction.channel_id))
        language = adapter.reply_language(chosen, interaction.locale)
        await interaction.response.send_message(
            adapter.describe_settings(chosen, channel_keys=set(own), locale=language), ephemeral=True)

    async def _settings(self, guild: discord.Guild | None, channel_id: int | None) -> ConversationSettings:
        """The server's settings with this channel's own over them (a direct message has only its own)."""
        scopes = [str(guild.id)] if guild is not None else []
        scopes += [str(channel_id)] if channel_id is not None else []
        layers = await asyncio.to_thread(
            lambda: [self.service.preferences.get_all(self.platform, scope) for scope in scopes])
        if layers and guild is not None:
            layers[0] = {_LEGACY_KEYS.get(key, key): value for key, value in layers[0].items()}
        return ConversationSettings.from_stored(*layers)

    async def _options(self, guild: discord.Guild | None, channel_id: int | None, language: str | None,
                       translate: bool | None) -> TranscribeOptions:
        """The settings here, with a one-off language and translation typed with the command over them."""
        offered = self.service.settings.expected_languages
        code = resolve_language(language, offered) if language else None
        chosen = await self._settings(guild, channel_id)
        return chosen.options(offered, language=code, translate=translate)

    async def _forget(self, interaction: discord.Interaction) -> None:
        """The server's settings, and the transcripts and job records of each of its channels and threads."""
        if await self._refused(interaction):
            return
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            await interaction.response.send_message(await self._say(interaction, NOT_ALLOWED), ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
        # Settings are kept per server, transcripts and jobs per channel (a thread is a channel of its own).
        chats = {str(interaction.guild_id), str(interaction.channel_id)}
        guild = interaction.guild
        if guild is not None:  # the server's channels and threads as the gateway told the client of them
            chats |= {str(c.id) for c in guild.channels} | {str(t.id) for t in guild.threads}
        parts = [await self.service.forget(self.platform, chat) for chat in sorted(chats)]
        total = Forgotten(transcripts=sum(p.transcripts for p in parts), settings=sum(p.settings for p in parts),
                          jobs=sum(p.jobs for p in parts))
        await interaction.followup.send(await self._say(interaction, total.sentence))

    async def _on_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        text = await self._say(interaction,
                               cause.user_message if isinstance(cause, ChatscribeError) else INTERNAL_ERROR)
        if not isinstance(cause, ChatscribeError):
            log.error("interaction %s failed", interaction.id, exc_info=cause)
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)

    # -- accepting work ------------------------------------------------------------------------------

    async def _submit_all(self, source: discord.Message, attachments: list[discord.Attachment],
                          answer_to: discord.Message, options: TranscribeOptions, *, voice: bool = False) -> None:
        replies = await self._message_language(answer_to)
        for attachment, label in adapter.labelled(attachments):
            target = adapter.Target(channel_id=str(answer_to.channel.id), guild_id=_guild_id(answer_to.guild),
                                    reply_to=str(answer_to.id), label=label, replies=replies)
            try:
                await self._submit(attachment, target, str(source.id), str(answer_to.author.id), options, voice,
                                   sender_language=_locale(source.guild.preferred_locale if source.guild else None))
            except ChatscribeError as exc:  # refused up front (too large, busy): answer at once, go on
                await self._delivery.discord.answer_now(target, exc)

    async def _submit_interaction(self, interaction: discord.Interaction,
                                  items: list[tuple[discord.Attachment, str | None]], source_id: str | None,
                                  options: TranscribeOptions, ephemeral: bool) -> None:
        replies = await self._language(interaction)
        for attachment, label in items:
            target = adapter.Target(
                channel_id=str(interaction.channel_id), guild_id=_guild_id(interaction.guild),
                application_id=str(interaction.application_id), interaction_token=interaction.token,
                ephemeral=ephemeral, label=label, replies=replies)
            try:
                await self._submit(attachment, target, source_id, str(interaction.user.id), options, False,
                                   sender_language=_locale(interaction.locale))
            except ChatscribeError as exc:
                await self._delivery.discord.answer_now(target, exc)

    async def _submit(self, attachment: discord.Attachment, target: adapter.Target, source_id: str | None,
                      user_id: str, options: TranscribeOptions, voice: bool, *,
                      sender_language: str | None = None) -> None:
        """`sender_language`: the asker's Discord locale, or the server's preferred one for a message (a hint
        for a short clip's language)."""
        reference = adapter.to_reference(target, adapter.Source(str(attachment.id), attachment.url, source_id))
        request = adapter.build_request(attachment, target=target, source_message_id=source_id, user_id=user_id,
                                        fetch=self.fetcher(reference), voice=voice, sender_language=sender_language)
        job = await self.service.submit(request, options)
        self._delivery.accepted(job)

    async def _message_language(self, message: discord.Message) -> str | None:
        """The reply language for a message: the conversation's setting, else the server's preferred locale
        (a message, unlike an interaction, does not say its author's)."""
        chosen = await self._settings_or_default(message.guild, message.channel.id)
        return adapter.reply_language(chosen, message.guild.preferred_locale if message.guild else None)

    async def _language(self, interaction: discord.Interaction) -> str | None:
        """The reply language for an interaction: the conversation's setting, else the person's Discord locale."""
        chosen = await self._settings_or_default(interaction.guild, interaction.channel_id)
        return adapter.reply_language(chosen, interaction.locale)

    async def _settings_or_default(self, guild: discord.Guild | None, channel_id: int | None) -> ConversationSettings:
        try:
            return await self._settings(guild, channel_id)
        except Exception:  # the settings store failing must not stop the sentence that says so
            log.warning("could not read the settings for the reply language", exc_info=True)
            return ConversationSettings()

    async def _say(self, interaction: discord.Interaction, text: str) -> str:
        return localize(text, await self._language(interaction))

    # -- Delivery (the service calls these; the sending lives in discord_delivery) -----------------------

    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        return self._delivery.fetcher(reference)

    async def progress(self, job: Job, update: ProgressUpdate) -> None:
        await self._delivery.progress(job, update)

    async def deliver(self, job: Job, outcome: Transcript | ChatscribeError, receipt: Receipt) -> None:
        await self._delivery.deliver(job, outcome, receipt)

    async def _reply(self, message: discord.Message, text: str) -> None:
        """One of the bot's sentences, in the conversation's reply language or the server's preferred locale."""
        try:
            text = localize(text, await self._message_language(message))
            await message.reply(text, mention_author=False)
        except discord.HTTPException as exc:
            log.warning("could not answer message %s: %s", message.id, exc.status)


_ORIGINAL_BASE, _ORIGINAL_GATEWAY = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY


class CatalogTranslator(app_commands.Translator):
    """Command and option descriptions in each Discord locale the bots speak, from the same catalogs as their
    sentences; names and choices stay as they are (what people type)."""

    _LOCATIONS = frozenset({app_commands.TranslationContextLocation.command_description,
                            app_commands.TranslationContextLocation.group_description,
                            app_commands.TranslationContextLocation.parameter_description})

    async def translate(self, string: app_commands.locale_str, locale: discord.Locale,
                        context: app_commands.TranslationContextTypes) -> str | None:
        language = reply_language(locale.value)
        if context.location not in self._LOCATIONS or language in (None, "en"):
            return None
        message = string.message
        text = localize(message if isinstance(message, Sentence) else Sentence(message), language)
        return text if text != message and len(text) <= DESCRIPTION_LIMIT else None


def _confirmation(change: SettingChange, *, per_channel: bool) -> str:
    if change.key == "auto" and change.value:
        return (CHANNEL_AUTO_ANSWERS if per_channel else AUTO_ANSWERS)[change.value]
    return joined([Sentence("In this channel:") if per_channel else Sentence("In this server:"), change.confirmation])


def _explain(failure: BaseException | None, base_url: str) -> Exception:
    """Why the client stopped before it was ready, in a sentence that says what to fix."""
    if isinstance(failure, discord.LoginFailure) or (
            isinstance(failure, discord.ConnectionClosed) and failure.code == 4004):
        return ConfigError("Discord rejected DISCORD_BOT_TOKEN: copy it again from the Developer Portal "
                           "(your application -> Bot -> Reset Token).")
    if isinstance(failure, discord.PrivilegedIntentsRequired):
        return ConfigError("Discord refused the Message Content intent: enable it in the Developer Portal "
                           "(your application -> Bot -> Privileged Gateway Intents -> Message Content Intent).")
    if isinstance(failure, (OSError, aiohttp.ClientError, discord.GatewayNotFound, discord.HTTPException)):
        return ConfigError(f"Cannot reach Discord at {base_url} ({type(failure).__name__}): check the network "
                           "and DISCORD_API_BASE_URL.")
    return ConnectionError(f"the Discord client stopped before it was ready: {failure!r}")


def _log_stop(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the Discord connection stopped: %s", _explain(task.exception(), "Discord"))


async def _latest_media(channel: discord.abc.Messageable, *, before: discord.Message | None = None,
                        ) -> discord.Message | None:
    try:
        async for candidate in channel.history(limit=HISTORY_LIMIT, before=before):
            if not candidate.author.bot and adapter.media_attachments(candidate):
                return candidate
    except discord.Forbidden as exc:
        raise ChatscribeError(NO_HISTORY) from exc
    return None


def _guild_id(guild: discord.Guild | None) -> str | None:
    return str(guild.id) if guild is not None else None


def _locale(locale: discord.Locale | None) -> str | None:
    return str(locale) if locale is not None else None  # discord.Locale's str is its tag: "de", "pt-BR"
