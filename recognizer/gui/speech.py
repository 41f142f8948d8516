"""Speaking the recognised phrase aloud, and the alarm sound for "help".

Qt's text-to-speech and multimedia modules load system libraries (a speech
engine, PulseAudio) that a bedside PC may lack. :class:`Speaker` tries them
once; what it cannot do it says once, through ``on_message``, and keeps in
:attr:`Speaker.speech_problem` and :attr:`Speaker.alarm_problem` for the
window to show where it stays; from then on it stays silent instead of failing.
"""
from __future__ import annotations

import io
import math
import struct
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QUrl
from PySide6.QtWidgets import QApplication

from features.files import atomic_output
from features.text import spoken_text


def alert_tone(seconds: float = 0.9, rate: int = 16000) -> bytes:
    """A WAV file's bytes: three short 880 Hz beeps, loud enough to carry across a room."""
    samples = []
    for i in range(int(seconds * rate)):
        t = i / rate
        on = (t * 3.33) % 1.0 < 0.6
        samples.append(int(on * 0.8 * 32767 * math.sin(2 * math.pi * 880 * t)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return buffer.getvalue()


class Speaker(QObject):
    """Says phrases with QtTextToSpeech; sounds the alarm tone.

    ``on_message(text)`` hears, once each, that speech or sound is unavailable;
    :attr:`speech_problem` and :attr:`alarm_problem` keep why ("" when they work).
    """

    def __init__(self, on_message: Callable[[str], None], parent=None):
        super().__init__(parent)
        self._on_message = on_message
        self.speech_problem = ""
        self.alarm_problem = ""
        self._tts = self._make_tts()
        self._alert = self._make_alert()

    @property
    def can_speak(self) -> bool:
        return self._tts is not None

    def _cannot(self, what: str, problem: str) -> None:
        setattr(self, what, problem)
        self._on_message(problem)

    def _make_tts(self):
        try:
            from PySide6.QtTextToSpeech import QTextToSpeech
        except ImportError as error:
            self._cannot("speech_problem", f"Phrases cannot be spoken aloud: no text-to-speech on "
                         f"this computer ({error}). Install a speech engine (e.g. speech-dispatcher) "
                         "to hear them.")
            return None
        if not QTextToSpeech.availableEngines():
            self._cannot("speech_problem", "Phrases cannot be spoken aloud: no text-to-speech "
                         "engine is installed (e.g. speech-dispatcher or flite). They are still "
                         "shown on screen.")
            return None
        tts = QTextToSpeech(self)
        if tts.state() == QTextToSpeech.State.Error:
            # e.g. the speech-dispatcher plug-in is listed but its daemon is not running
            self._cannot("speech_problem", f"Phrases cannot be spoken aloud: the text-to-speech "
                         f"engine does not work ({tts.errorString() or 'no reason given'}); is "
                         "speech-dispatcher running? The phrases are still shown on screen.")
            return None
        return tts

    def _make_alert(self):
        try:
            from PySide6.QtMultimedia import QMediaDevices, QSoundEffect
        except ImportError as error:
            self._cannot("alarm_problem", "this computer cannot play sound (ask IT to set up "
                         "its sound): the alarm shows on screen only")
            return None
        if not QMediaDevices.audioOutputs():
            self._cannot("alarm_problem", "this computer has no sound device (connect speakers): "
                         "the alarm shows on screen only")
            return None
        path = Path(tempfile.gettempdir()) / "lipreader-alert.wav"
        if not path.is_file():
            with atomic_output(path) as tmp:
                tmp.write_bytes(alert_tone())
        effect = QSoundEffect(self)
        effect.setSource(QUrl.fromLocalFile(str(path)))
        effect.setVolume(1.0)
        return effect

    def say(self, phrase: str) -> None:
        """Speak ``phrase`` (cutting off the previous one)."""
        if self._tts is not None:
            self._tts.stop()
            self._tts.say(spoken_text(phrase))

    def alert(self) -> None:
        """The alarm tone; where the sound device cannot play it, the system beep, and
        :attr:`alarm_problem` says so."""
        if self._alert is not None and self._alert.status() != self._alert.Status.Error:
            self._alert.play()
            return
        if self._alert is not None and not self.alarm_problem:
            self._cannot("alarm_problem", "the sound device does not play the alarm: it shows "
                         "on screen only")
        QApplication.beep()
