"""``from voicechatengine import VoiceChatEngine, VoiceEngineConfig`` — the
VoiceChatEngine document's import path. Only a re-export: the module is
:mod:`parley.client.voicechat` (see ``docs/seeds.md``)."""

from parley.client.voicechat import VoiceChatEngine, VoiceEngine, VoiceEngineConfig

__all__ = ["VoiceChatEngine", "VoiceEngine", "VoiceEngineConfig"]
