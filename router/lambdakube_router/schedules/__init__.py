"""Schedules (``spec.schedule``): which functions fire now (``plan``), the Scheduled
Event they get (``event``), the ticks already fired (``ticks``) and the loop (``runner``)."""
