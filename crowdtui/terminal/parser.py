"""A hardened escape-sequence parser on top of pyte's Stream.

pyte 0.8.2's parser mis-handles what modern programs send: private markers other
than ``?`` are dropped (``CSI > 4 ; 2 m`` turns on underline and bold), CSI with
intermediates leaves stray characters (``CSI 2 SP q``), colon sub-parameters
(``CSI 38:2::255:0:0 m``) print as text, DCS/APC strings print as text, and some
sequences raise TypeError (``CSI ? 4 m``). This parser keeps pyte's dispatch and
speed for plain text but recognises the full ECMA-48 shape of each sequence and
ignores what it does not know.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Callable, Dict, Mapping

import pyte
from pyte import control as ctrl

from .charsets import CHARSETS

#: Longest parameter string / OSC payload kept (hostile streams stay bounded).
MAX_PARAMS_CHARS = 256
MAX_OSC_CHARS = 4096
#: Distinct parameter strings / SGR transitions remembered (bounded for hostile streams).
MAX_CACHED = 4096
DECSCNM = pyte.modes.DECSCNM

_STRING_INTRODUCERS = "PX^_"  # DCS, SOS, PM, APC: swallowed up to ST
#: A complete, well-formed CSI sequence (what the FSM would parse the same way).
_CSI = re.compile(r"\x1b\[([<=>?]*)([0-9;:]*)([ -/]*)([@-~])")


def _int(text: str) -> int:
    if not text:
        return 0
    try:
        return min(int(text[:6]), 9999)
    except ValueError:
        return 0


def parse_params(raw: str) -> list[int]:
    """pyte-compatible parameters: one int per ``;`` field (first colon sub-field)."""
    return [_int(piece.split(":", 1)[0]) for piece in raw.split(";")]


def parse_sgr(raw: str) -> list[int]:
    """SGR parameters with colon forms flattened to the semicolon forms pyte knows."""
    out: list[int] = []
    for piece in raw.split(";"):
        if ":" not in piece:
            out.append(_int(piece))
            continue
        subs = piece.split(":")
        head = _int(subs[0])
        if head in (38, 48) and len(subs) >= 3:
            if subs[1] == "5":
                out += [head, 5, _int(subs[2])]
            elif subs[1] == "2" and len(subs) >= 5:
                out += [head, 2] + [_int(s) for s in subs[-3:]]
        elif head == 4:
            out.append(24 if subs[1] in ("", "0") else 4)
        elif head == 58:
            continue  # underline colour: not rendered
        else:
            out.append(head)
    return out


class TerminalStream(pyte.Stream):
    """pyte Stream with a parser that never leaks sequence bytes as text."""

    csi = dict(pyte.Stream.csi)
    csi.update({"S": "scroll_up", "T": "scroll_down", "b": "repeat_character"})

    escape = dict(pyte.Stream.escape)
    escape.update({"=": "set_keypad_application", ">": "reset_keypad_application"})

    events = pyte.Stream.events | {
        "set_keypad_application",
        "reset_keypad_application",
        "set_cursor_style",
        "scroll_up",
        "scroll_down",
        "repeat_character",
    }

    #: In the ground state: a run of plain text (group 1), a CSI without private marker
    #: or intermediates (groups 2-3), or any other complete well-formed CSI (groups 4-7).
    _token = re.compile("(" + pyte.Stream._text_pattern.pattern + r")|\x1b\[([0-9;:]*)([@-~])|"
                        + _CSI.pattern)

    def feed(self, data: str) -> None:
        """pyte's feed, plus: in the ground state each run of text and each
        complete CSI sequence is one regex match, instead of one generator step
        per character; everything else goes through the state machine."""
        send = self._send_to_parser
        screen = self.listener
        draw = screen.draw
        dispatch_csi = self._dispatch_csi
        plain_csi = self._plain_csi
        sgr_get = screen.sgr_cache.get
        match_token = self._token.match
        taking_plain_text = self._taking_plain_text
        length = len(data)
        offset = 0
        while offset < length:
            if taking_plain_text:
                match = match_token(data, offset)
                if match:
                    offset = match.end()
                    kind = match.lastindex
                    if kind == 1:
                        draw(match.group(1))
                    elif kind == 3:
                        raw, final = match.group(2, 3)
                        if final == "m":  # SGR: most often a transition seen before
                            cursor = screen.cursor
                            attrs = cursor.attrs
                            seen = sgr_get((raw, id(attrs)))
                            if seen is not None and seen[0] is attrs:
                                cursor.attrs = seen[1]
                                continue
                        plain_csi(raw[:MAX_PARAMS_CHARS], final)
                    else:
                        prefix, raw, inter, final = match.group(4, 5, 6, 7)
                        dispatch_csi(prefix, raw[:MAX_PARAMS_CHARS], inter, final)
                    continue
            taking_plain_text = send(data[offset])
            offset += 1
        self._taking_plain_text = taking_plain_text

    def _parser_fsm(self):  # type: ignore[override]
        basic = self.basic
        listener = self.listener
        assert listener is not None
        draw = listener.draw
        debug = listener.debug

        ESC, CSI_C1, OSC_C1 = ctrl.ESC, ctrl.CSI_C1, ctrl.OSC_C1
        NUL_OR_DEL = ctrl.NUL + ctrl.DEL
        CAN_OR_SUB = ctrl.CAN + ctrl.SUB
        ALLOWED_IN_CSI = "".join([ctrl.BEL, ctrl.BS, ctrl.HT, ctrl.LF, ctrl.VT, ctrl.FF, ctrl.CR])
        PARAM_CHARS = "0123456789;:"

        def create_dispatcher(mapping: Mapping[str, str]) -> Dict[str, Callable[..., Any]]:
            return defaultdict(lambda: debug, {event: getattr(listener, attr) for event, attr in mapping.items()})

        basic_dispatch = create_dispatcher(basic)
        sharp_dispatch = create_dispatcher(self.sharp)
        escape_dispatch = create_dispatcher(self.escape)
        csi_dispatch = create_dispatcher(self.csi)
        set_mode = listener.set_mode
        reset_mode = listener.reset_mode
        erase_in_display = listener.erase_in_display
        erase_in_line = listener.erase_in_line
        sgr = listener.select_graphic_rendition
        set_cursor_style = listener.set_cursor_style
        define_charset = listener.define_charset

        def call(handler: Callable[..., Any], params: list[int], **kwargs: Any) -> None:
            # Extra parameters make pyte's handlers raise TypeError; terminals
            # ignore the extras, so retry with fewer.
            for n in range(len(params), -1, -1):
                try:
                    handler(*params[:n], **kwargs)
                    return
                except TypeError:
                    continue
                except (ValueError, IndexError, KeyError, OverflowError):
                    return

        # Programs repeat the same few sequences: parsed parameters and the
        # attributes an SGR turns the current ones into are remembered (SGR is a
        # pure function of its parameters, the current attributes and DECSCNM; the
        # screen empties ``sgr_cache`` when a mode changes).
        params_cache: dict[str, list[int]] = {}
        sgr_cache = listener.sgr_cache
        canonical: dict[Any, Any] = {}

        def params_of(raw: str) -> list[int]:
            params = params_cache.get(raw)
            if params is None:
                if len(params_cache) >= MAX_CACHED:
                    params_cache.clear()
                params = params_cache[raw] = parse_params(raw)
            return params

        def plain_csi(raw: str, final: str) -> None:
            """A CSI without private marker or intermediates."""
            if final == "m":
                cursor = listener.cursor
                attrs = cursor.attrs
                call(sgr, parse_sgr(raw))
                if len(sgr_cache) >= MAX_CACHED:
                    sgr_cache.clear()
                    canonical.clear()
                # Equal attributes share one object, so the id-keyed cache finds them.
                after = cursor.attrs = canonical.setdefault(cursor.attrs, cursor.attrs)
                # attrs is kept in the entry, so its id cannot be reused meanwhile
                sgr_cache[(raw, id(attrs))] = (attrs, after)
                return
            handler = csi_dispatch[final]
            params = params_of(raw)
            try:
                handler(*params)
            except TypeError:
                call(handler, params[:-1])
            except (ValueError, IndexError, KeyError, OverflowError):
                pass

        def dispatch_csi(prefix: str, raw: str, inter: str, final: str) -> None:
            if not prefix and not inter:
                plain_csi(raw, final)
            elif prefix == "?" and not inter:
                params = params_of(raw)
                if final == "h":
                    call(set_mode, params, private=True)
                elif final == "l":
                    call(reset_mode, params, private=True)
                elif final == "J":
                    call(erase_in_display, params[:1], private=True)
                elif final == "K":
                    call(erase_in_line, params[:1], private=True)
            elif inter == " " and not prefix and final == "q":
                call(set_cursor_style, parse_params(raw)[:1])

        self._dispatch_csi = dispatch_csi
        self._plain_csi = plain_csi
        pending = ""  # bytes to re-read: at most ESC and one more
        while True:
            if pending:
                char, pending = pending[0], pending[1:]
            else:
                char = yield True

            if char == ESC:
                if pending:
                    char, pending = pending[0], pending[1:]
                else:
                    char = yield None
                if char == "[":
                    char = CSI_C1
                elif char == "]":
                    char = OSC_C1
                elif char == ESC:
                    pending = ESC
                    continue
                elif char in _STRING_INTRODUCERS:
                    # Swallow the control string up to ST (ESC \); CAN/SUB abort it.
                    while True:
                        char = yield None
                        if char in CAN_OR_SUB:
                            break
                        if char == ESC:
                            char = yield None
                            if char != "\\":
                                pending = ESC + char
                            break
                    continue
                elif char == "#":
                    sharp_dispatch[(yield None)]()
                    continue
                elif char == "%":
                    yield None  # charset switch: input is always UTF-8
                    continue
                elif char in "()":
                    # G0/G1 designation: honoured in UTF-8 too, as xterm and tmux do
                    code = yield None
                    if code in CHARSETS:
                        define_charset(code, char)
                    continue
                elif " " <= char <= "/":
                    yield None  # other intermediates (G2/G3, ...): consume the final byte
                    continue
                elif char in CAN_OR_SUB:
                    continue
                else:
                    try:
                        escape_dispatch[char]()
                    except Exception:
                        pass
                    continue

            if char in basic:
                basic_dispatch[char]()  # SO/SI included: they select G1/G0
            elif char == CSI_C1:
                raw = ""
                prefix = ""
                inter = ""
                while True:
                    char = yield None
                    if char in PARAM_CHARS:
                        if len(raw) < MAX_PARAMS_CHARS:
                            raw += char
                    elif char in "<=>?":
                        if raw or inter:
                            pass  # misplaced marker: malformed, keep consuming
                        prefix += char
                    elif " " <= char <= "/":
                        inter += char
                    elif char in ALLOWED_IN_CSI:
                        basic_dispatch[char]()
                    elif char in CAN_OR_SUB:
                        break
                    elif char == ESC:
                        pending = ESC
                        break
                    elif "@" <= char <= "~":
                        dispatch_csi(prefix, raw, inter, char)
                        break
                    else:
                        break  # not a CSI byte at all: abandon the sequence
            elif char == OSC_C1:
                payload = ""
                while True:
                    char = yield None
                    if char == ctrl.BEL or char == ctrl.ST_C1:
                        break
                    if char in CAN_OR_SUB:
                        payload = None
                        break
                    if char == ESC:
                        char = yield None
                        if char != "\\":
                            pending = ESC + char
                        break
                    if payload is not None and len(payload) < MAX_OSC_CHARS:
                        payload += char
                if payload:
                    code, _, text = payload.partition(";")
                    if code in ("0", "1"):
                        listener.set_icon_name(text)
                    if code in ("0", "2"):
                        listener.set_title(text)
            elif char not in NUL_OR_DEL:
                draw(char)
