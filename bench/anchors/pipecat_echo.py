"""Pipecat's echo bot on Twilio Media Streams: the anchor of ``bench/calls.py --anchor pipecat``.

Run by the bench with the Python of a side virtual environment that has Pipecat
(``bench/.anchors/pipecat``, made by the bench, git-ignored; Pipecat is never a
dependency of Parley). One uvicorn process serves ``/twilio/stream`` with FastAPI;
each call is a Pipecat pipeline ``transport.input() → echo → transport.output()``
over Pipecat's own ``FastAPIWebsocketTransport`` and ``TwilioFrameSerializer`` (its
Twilio JSON, µ-law ↔ PCM16 and resampling), the way Pipecat's Twilio examples build
it, with the caller's audio sent straight back: what a load test of the transport
measures, as ``parley serve --engine loopback`` does for Parley.

    python bench/anchors/pipecat_echo.py --port 8765
"""

from __future__ import annotations

import argparse
import json
import sys

import uvicorn
from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.workers.runner import WorkerRunner

# Pipecat logs every pipeline step at DEBUG through loguru: a server under load would
# spend its time printing. Warnings and errors only, as for Parley's server.
logger.remove()
logger.add(sys.stderr, level="WARNING")

app = FastAPI()


class Echo(FrameProcessor):
    """The caller's audio back out, as it came in."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self.push_frame(
                OutputAudioRawFrame(frame.audio, frame.sample_rate, frame.num_channels)
            )
        else:
            await self.push_frame(frame, direction)


@app.get("/readyz")
async def readyz() -> dict[str, bool]:
    return {"ready": True}


@app.websocket("/twilio/stream")
async def stream(websocket: WebSocket) -> None:
    await websocket.accept()
    # Pipecat's Twilio examples read "connected" and "start" first, for the stream sid.
    start: dict[str, object] = {}
    while not start:
        message = json.loads(await websocket.receive_text())
        if message.get("event") == "start":
            start = message["start"]
    serializer = TwilioFrameSerializer(
        stream_sid=str(start["streamSid"]),
        call_sid=str(start.get("callSid", "")),
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=serializer,
        ),
    )
    pipeline = Pipeline([transport.input(), Echo(), transport.output()])
    task = PipelineTask(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
    )

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: object, client: object) -> None:
        await task.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(task)
    await runner.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
