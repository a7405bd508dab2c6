"""The progress bar of long commands: steps counted, time left estimated from the steps so far."""

import io

from kerasrv.progress import Progress, duration


def test_durations_read_as_a_person_would_say_them():
    assert duration(45) == "45 s"
    assert duration(200) == "3 min 20 s"
    assert duration(3900) == "1 h 05 min"


def test_each_step_shows_the_bar_the_time_so_far_and_the_time_left():
    now = [0.0]
    out = io.StringIO()
    progress = Progress(4, file=out, clock=lambda: now[0])
    progress.step("writing saved_model")
    now[0] = 30.0
    progress.step("writing tflite")
    now[0] = 90.0
    progress.step("parity of saved_model")
    now[0] = 100.0
    progress.finish("exported")
    lines = out.getvalue().splitlines()
    assert lines[0] == "[--------------------] 1/4 writing saved_model"
    # one step done in 30 s: three left at 30 s each
    assert lines[1] == (
        "[#####---------------] 2/4 writing tflite · 30 s so far · about 1 min 30 s left"
    )
    assert lines[2].endswith(
        "3/4 parity of saved_model · 1 min 30 s so far · about 1 min 30 s left"
    )
    assert lines[3] == "[####################] 4/4 exported in 1 min 40 s"
