"""The app's tabs: one module per tab, each exposing `build()`. UI only; the maths is in `gpt`."""
