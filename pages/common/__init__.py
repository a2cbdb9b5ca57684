"""What the tabs share; no tab imports another tab (`lint-imports` checks it).

- `models`: the picker + note + card header (`model_header`) and the one model loader.
- `inputs`: values checked once where they enter (named API errors, clamps and cuts that say what
  they used, `sampling_args`), and failures as messages (`friendly_errors`, `job_errors`).
- `heavy`: each tab marks its heavy and light events.
- `render`: page CSS, token texts, coloured text, axis ticks, chart layouts, durations.
- `views`: the analysis views' caps, attribution and CSV + JSON export (Inside, Spam, ...).

The names most tabs use are here too.
"""

from pages.common.heavy import heavy, light
from pages.common.inputs import friendly_errors, job_errors, named_errors, number_input
from pages.common.models import Page, Picker, model_card_box, model_choices
from pages.common.render import duration, esc, layout, md, ticks, token_labels, visible

__all__ = [
    "Page", "Picker", "duration", "esc", "friendly_errors", "heavy", "job_errors", "layout", "light",
    "md", "model_card_box", "model_choices", "named_errors", "number_input", "ticks", "token_labels",
    "visible",
]
