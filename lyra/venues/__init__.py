"""lyra.venues: everything Lyra knows about each venue, in one registry.

One frozen :class:`Venue` row per venue holds its ccxt id, how its shipped markets state
precision, its market-data capabilities (candle and trade page sizes, timeframes, websocket
channels), its order-entry capabilities (the client-order-id parameters, private streams,
duplicate-order messages) and its raw-payload tables (:class:`VenueShape`: what each raw
order status means). The feeds and the brokers read these rows; none tests a venue's name.

This package sits just above :mod:`lyra.core` and imports nothing else of Lyra.

>>> from lyra.venues import VENUES, get_venue
>>> sorted(VENUES)
['binance', 'bybit', 'coinbase', 'kraken', 'okx']
>>> get_venue("okx").client_order_id_param
'clOrdId'
"""

from lyra.venues.model import FAMILIES, Venue, VenueShape
from lyra.venues.registry import VENUES, get_venue

__all__ = ["FAMILIES", "VENUES", "Venue", "VenueShape", "get_venue"]
