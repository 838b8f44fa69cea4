"""The invented cities of Revisor's synthetic V-IRL worlds: naming styles, layouts and looks.

One training city stands in for the study's New York training routes; nine benchmark cities
differ from it in where they are, how their places are named, how their streets run and how
they look, as the study's nine-city visual out-of-distribution benchmark does.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

RGB = tuple[int, int, int]


class Palette(BaseModel):
    """The colours a city's street views are painted with (never the sign-board colours)."""

    model_config = ConfigDict(frozen=True)

    sky: RGB
    ground: RGB
    road: RGB
    marking: RGB
    buildings: tuple[RGB, ...]
    windows: RGB


class CityStyle(BaseModel):
    """How one city is laid out, named and painted."""

    model_config = ConfigDict(frozen=True)

    name: str
    origin: tuple[float, float]
    """(lat, lng) of the south-west corner of the street grid."""
    rotation_deg: float
    """Heading of the grid's 'north-south' streets, like Manhattan's tilted avenues."""
    block_m: tuple[int, int]
    """Shortest and longest block edge in metres."""
    jitter: float
    """How far (share of a block) intersections stray from a perfect grid."""
    pattern: str
    """A place name from words: {a}, {b} (descriptors) and {k} (the kind of place)."""
    a_words: tuple[str, ...]
    b_words: tuple[str, ...]
    kinds: tuple[str, ...]
    palette: Palette

    @property
    def region(self) -> str:
        return self.name.replace(" ", "_")


_ENGLISH_A = ("Blue", "Red", "Old", "Golden", "Silver", "Green", "Little", "Grand", "Copper",
              "Iron", "Maple", "Cedar", "North", "Harbour", "Lantern", "Stone", "Royal", "Sunny")
_ENGLISH_B = ("Door", "Anchor", "Bridge", "Mill", "Oak", "Crown", "Garden", "Lamp", "Bell",
              "Fox", "River", "Corner", "Hill", "Star", "Gate", "Owl", "Kettle", "Tower")

TRAIN_CITY = CityStyle(
    name="Eastharbor", origin=(40.7410, -73.9990), rotation_deg=29.0, block_m=(80, 160),
    jitter=0.08, pattern="{a} {b} {k}", a_words=_ENGLISH_A, b_words=_ENGLISH_B,
    kinds=("Bakery", "Books", "Pharmacy", "Bank", "Diner", "Deli", "Gym", "Florist",
           "Hardware", "Laundromat", "Pizzeria", "Cafe", "Barbershop", "Bistro"),
    palette=Palette(sky=(150, 190, 235), ground=(120, 120, 115), road=(60, 60, 64),
                    marking=(235, 235, 235), windows=(40, 60, 90),
                    buildings=((150, 80, 60), (170, 100, 75), (120, 70, 55), (140, 130, 120))),
)
"""Brownstone avenues on a tilted grid: the in-distribution look and naming."""


def _city(name: str, origin: tuple[float, float], rotation: float, block: tuple[int, int],
          jitter: float, pattern: str, a: str, b: str, kinds: str, sky: RGB, ground: RGB,
          road: RGB, buildings: tuple[RGB, ...]) -> CityStyle:
    return CityStyle(
        name=name, origin=origin, rotation_deg=rotation, block_m=block, jitter=jitter,
        pattern=pattern, a_words=tuple(a.split(",")), b_words=tuple(b.split(",")),
        kinds=tuple(kinds.split(",")),
        palette=Palette(sky=sky, ground=ground, road=road, marking=(245, 245, 240),
                        buildings=buildings, windows=(50, 50, 60)),
    )


BENCHMARK_CITIES: tuple[CityStyle, ...] = (
    _city("Valmonte", (43.7700, 11.2500), 12.0, (60, 110), 0.12, "{k} {a} {b}",
          "Luna,Sole,Aurora,Stella,Fiore,Vento,Mare,Torre,Rosa,Oro,Monte,Nido",
          "Antica,Nuova,Bella,Vecchia,Grande,Piccola,Alta,Chiara,Dolce,Viva,Prima,Rossa",
          "Trattoria,Pasticceria,Farmacia,Libreria,Gelateria,Caffe,Banca,Museo,Enoteca,Osteria",
          (170, 205, 240), (190, 170, 140), (110, 100, 90),
          ((215, 160, 100), (230, 190, 130), (200, 120, 80), (225, 210, 170))),
    _city("Saint-Aubel", (48.8500, 2.3400), 63.0, (70, 130), 0.10, "{k} {a} {b}",
          "du Parc,des Arts,de la Gare,du Marche,des Lilas,du Port,des Fleurs,du Moulin,"
          "de la Place,des Amis,du Lac,des Tilleuls", "Bleu,Dore,Royal,Central,Vert,Blanc,"
          "Ancien,Joli,Petit,Grand,Clair,Neuf", "Boulangerie,Librairie,Pharmacie,Brasserie,"
          "Fromagerie,Musee,Banque,Patisserie,Epicerie,Fleuriste",
          (185, 200, 225), (175, 170, 160), (85, 85, 95),
          ((225, 215, 190), (205, 195, 175), (190, 180, 165), (235, 225, 205))),
    _city("Kitahama", (34.6900, 135.5000), 0.0, (50, 90), 0.05, "{a} {b} {k}",
          "Sakura,Hikari,Midori,Kaze,Yuki,Hoshi,Sora,Umi,Kawa,Mori,Tsuki,Hana",
          "Dori,Tei,Ya,Kan,Do,Ken,Sha,Bo,An,Ro,En,Za", "Ramen,Sushi,Books,Pharmacy,Kissaten,"
          "Bank,Museum,Bakery,Izakaya,Stationery", (200, 215, 230), (150, 150, 155),
          (70, 72, 80), ((200, 200, 205), (170, 175, 185), (220, 220, 215), (150, 160, 170))),
    _city("Brunnfeld", (52.5200, 13.4000), 41.0, (90, 170), 0.10, "{k} {a} {b}",
          "zum Adler,zur Linde,am Markt,zur Sonne,am Tor,zum Hirsch,am Brunnen,zur Post,"
          "am Ring,zum Anker,am Hof,zur Muehle", "Alt,Neu,Ost,West,Nord,Sued,Ober,Unter,"
          "Gross,Klein,Mittel,Hoch", "Baeckerei,Apotheke,Buchhandlung,Gasthaus,Museum,"
          "Konditorei,Sparkasse,Metzgerei,Blumenladen,Kiosk", (160, 180, 200),
          (140, 140, 135), (75, 75, 80),
          ((230, 225, 210), (200, 90, 70), (215, 205, 180), (180, 185, 190))),
    _city("San Aurelio", (19.4300, -99.1300), 80.0, (70, 120), 0.15, "{k} {a} {b}",
          "El Sol,La Luna,Real,del Mar,La Paz,El Roble,La Estrella,El Faro,La Plaza,"
          "El Puente,La Fuente,El Jardin", "Norte,Sur,Centro,Viejo,Nuevo,Alto,Bajo,Mayor,"
          "Chico,Bonito,Claro,Dorado", "Panaderia,Farmacia,Libreria,Cafe,Museo,Banco,"
          "Taqueria,Papeleria,Mercado,Zapateria", (140, 200, 250), (200, 180, 150),
          (120, 110, 100), ((240, 200, 90), (90, 170, 160), (230, 120, 110), (245, 235, 220))),
    _city("Nordvik", (59.9100, 10.7500), 350.0, (80, 140), 0.08, "{a}{b} {k}",
          "Fjord,Nord,Bjork,Sol,Elv,Fjell,Skog,Sjo,Vind,Lys,Stein,Havn",
          "by,vik,dal,lund,berg,strand,haug,nes,heim,voll,li,stad",
          "Bageri,Apotek,Bokhandel,Kafe,Museum,Bank,Blomster,Fiskehall,Bakeri,Kiosk",
          (175, 195, 215), (130, 135, 140), (65, 70, 75),
          ((180, 60, 50), (230, 200, 120), (90, 110, 130), (240, 240, 235))),
    _city("Lisvale", (38.7200, -9.1400), 22.0, (60, 100), 0.14, "{k} {a} {b}",
          "Estrela,Mar,Tejo,Sol,Luar,Rio,Vento,Ouro,Flor,Ponte,Torre,Farol",
          "Azul,Branca,Velha,Nova,Alta,Baixa,Doce,Real,Bela,Clara,Grande,Dourada",
          "Padaria,Farmacia,Livraria,Pastelaria,Museu,Banco,Tasca,Mercearia,Papelaria,Florista",
          (165, 210, 245), (215, 205, 185), (130, 125, 120),
          ((240, 230, 200), (120, 170, 210), (230, 170, 120), (250, 245, 235))),
    _city("Amberdam", (52.3700, 4.9000), 315.0, (70, 120), 0.10, "{k} {a} {b}",
          "De Molen,Het Anker,De Tulp,De Zwaan,Het Hert,De Kroon,De Brug,Het Schip,"
          "De Ster,De Gracht,Het Veld,De Poort", "Oud,Nieuw,Klein,Groot,Noord,Zuid,Oost,"
          "West,Hoog,Laag,Blauw,Rood", "Bakkerij,Apotheek,Boekhandel,Cafe,Museum,Bank,"
          "Kaaswinkel,Bloemist,Slagerij,Fietsenwinkel", (170, 185, 205), (120, 110, 100),
          (90, 80, 75), ((120, 60, 45), (150, 85, 60), (100, 55, 45), (60, 50, 45))),
    _city("Port Calder", (-33.8700, 151.2100), 105.0, (100, 180), 0.06, "{a} {b} {k}",
          "Coral,Wattle,Harbour,Southern,Eastern,Quay,Surf,Gum,Pelican,Jacaranda,Ocean,Bay",
          "View,Point,Reef,Ridge,Cove,Wharf,Heads,Park,Sands,Hill,Vale,Landing",
          "Bakery,Books,Chemist,Bank,Takeaway,Surf Shop,Milk Bar,Cafe,Bottle Shop,Newsagent",
          (120, 180, 240), (210, 200, 170), (80, 85, 90),
          ((230, 230, 225), (200, 190, 170), (150, 190, 200), (225, 180, 150))),
)
"""Nine cities unlike the training city in place, naming, street layout and colours."""
