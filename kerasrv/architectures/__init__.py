"""The zoo's architectures, one file per family; each registers its builder and entries.

| file                | builder            | task                 | reads the input as            |
|---------------------|--------------------|----------------------|-------------------------------|
| row_rnn.py          | row_rnn            | classification       | rows as time steps            |
| cnn_lstm.py         | cnn_lstm           | classification       | CNN feature columns           |
| renet.py            | renet              | classification       | row then column sweeps        |
| reseg.py            | reseg              | segmentation         | ReNet sweeps, per-pixel head  |
| lrcn.py             | lrcn               | video_classification | per-frame CNN → LSTM          |
| convlstm.py         | convlstm_seg       | video_segmentation   | per-frame encoder → ConvLSTM  |
| convlstm.py         | convlstm_predict   | next_frame           | per-frame encoder → ConvLSTM  |
| forecast.py         | convlstm_forecast  | video_prediction     | ConvLSTM stack, rolled out    |
| forecast.py         | predrnn            | video_prediction     | ST-LSTM stack, rolled out     |
"""

from kerasrv.architectures.cnn_lstm import cnn_lstm
from kerasrv.architectures.convlstm import convlstm_predict, convlstm_seg
from kerasrv.architectures.forecast import convlstm_forecast, predrnn
from kerasrv.architectures.lrcn import lrcn
from kerasrv.architectures.renet import renet
from kerasrv.architectures.reseg import reseg
from kerasrv.architectures.row_rnn import row_rnn

__all__ = [
    "cnn_lstm",
    "convlstm_forecast",
    "convlstm_predict",
    "convlstm_seg",
    "lrcn",
    "predrnn",
    "renet",
    "reseg",
    "row_rnn",
]
