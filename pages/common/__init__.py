"""What the tabs share; no tab imports another tab (`lint-imports` checks it).

- `models`: the model picker + its note + its card (`model_header`), and the one model loader
  (`wait_model`; `get_model` runs it to its end).
- `inputs`: every value that enters is checked once, where it enters: named API errors
  (`number_input`, `slider_input`, `named_errors`), clamps and cuts that say what they used,
  and the sampling sliders as a `SamplingConfig` (`sampling_args`).
- `render`: page CSS, token texts, coloured text, axis ticks, durations.
- `errors`: failures as messages for the visitor.
- `heavy`: each tab marks its heavy and light events (`heavy`, `light`).
- `views`: the token caps and the attribution view the Inside and Spam tabs share.
- `export`: a view's numbers as CSV + JSON.
"""

from pages.common.errors import friendly_errors, job_errors
from pages.common.heavy import heavy, light, mark_heavy, share_heavy_slots
from pages.common.inputs import (
    announce,
    cap_text,
    check_text,
    clamp,
    clamp_note,
    label_name,
    named_errors,
    number_input,
    sampling_args,
    slider_input,
)
from pages.common.models import (
    Page,
    Picker,
    card_markdown,
    card_of,
    get_model,
    gpt2_help,
    model_card_box,
    model_choices,
    model_header,
    model_note,
    model_picker,
    model_shape,
    model_status,
    progress_lines,
    wait_model,
)
from pages.common.render import (
    CSS,
    WHITESPACE,
    WHITESPACE_LEGEND,
    duration,
    esc,
    md,
    ticks,
    token_labels,
    token_text,
    visible,
)

__all__ = [  # what the tabs, app.py and the tests import from here
    "CSS", "WHITESPACE", "WHITESPACE_LEGEND", "Page", "Picker", "announce", "cap_text",
    "card_markdown", "card_of", "check_text", "clamp", "clamp_note", "duration", "esc",
    "friendly_errors", "get_model", "gpt2_help", "heavy", "job_errors", "label_name", "light",
    "mark_heavy", "md", "model_card_box", "model_choices", "model_header", "model_note",
    "model_picker", "model_shape", "model_status", "named_errors", "number_input",
    "progress_lines", "sampling_args", "share_heavy_slots", "slider_input", "ticks",
    "token_labels", "token_text", "visible", "wait_model",
]
