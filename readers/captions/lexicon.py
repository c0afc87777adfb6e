"""The words shoppers use for fashion attributes, written once: concepts with their other spellings,
families (a near miss falls back to its family: "cobalt" is a "blue"), kinds, and the cue words of the
role grammar.

A **concept** is one attribute idea with a canonical name in the labelled set's conventions (lower case,
singular, spaces for hyphens: "long sleeve", "v neck", "multi colour", "lace up"). A vocabulary value (a
graph attribute such as "navy blue" or "tshirts") is tied to the concept one of whose spellings it is;
plurals, hyphen/space/run-together variants and grey/gray style spellings are handled by the tokenizer's
match keys, so they are not listed here.

Kinds group concepts for the grammar: a negation list continues across "and" only within one broad kind
("no buttons or pockets"), "more"/"less" adds or removes a colour, pattern, material or detail but makes a
style word a comparative ("more yellow" adds yellow, "more casual" is a comparative), and garment nouns
marked ``generic`` only name the item ("the shirt is black": shirt is not a change).
"""

from __future__ import annotations

from dataclasses import dataclass

from readers.captions.tokens import lemma

__all__ = [
    "COLOUR_LIGHTNESS",
    "COMPARATIVES",
    "CONCEPTS",
    "Concept",
    "KIND_CLASS",
]


@dataclass(frozen=True)
class Concept:
    name: str
    kind: str  # colour, shade, pattern, motif, material, detail, shape, garment, gender, usage, season, style
    surfaces: tuple[str, ...] = ()
    parent: str | None = None  # where a vocabulary without this concept finds it
    generic: bool = False  # a garment noun that only names the item
    relation: str = "family"  # to the parent: same (another name) | shade (a shade of it) | family (near)


# Broad classes: a negation list ("no stripes or dots") continues across "and"/"," only within one class.
# A feature (the shape of a part) is a class of its own: "no collar and long sleeves" asserts the sleeves.
KIND_CLASS = {
    "colour": "colour", "shade": "colour", "pattern": "pattern", "motif": "pattern", "material": "material",
    "detail": "detail", "feature": "feature", "part": "detail", "shape": "shape", "garment": "garment", "gender": "gender", "usage": "usage",
    "season": "season", "style": "style", "value": "value",
}
# Kinds that "more X" adds and "less X" removes; any other word after more/less is a comparative.
GRADED_ADDS = frozenset({"colour", "shade", "pattern", "motif", "material", "detail"})
# Concepts that are already a degree: "more colourful" / "less colourful" grade them (a comparative), they
# do not add or remove them. So do the lightness words: "more bright" is "brighter", "less dark" "lighter".
GRADED_QUALITIES = frozenset({"colourful", "light", "dark", "bright"})

# --- colours -------------------------------------------------------------------------------------
# name, lightness (0 black .. 100 white, roughly CIE L*), family, forms (the same word: "golden" is gold)
# | other names (kept as written, "navy" is not "navy blue", and resolved to this colour at full
# confidence where a vocabulary lacks them).
_COLOURS: tuple[tuple[str, int, str | None, str], ...] = (
    ("black", 5, None, "| jet black, ebony"),
    ("white", 100, None, "whiteish, whitish | snow white, optic white"),
    ("off white", 94, "white", "offwhite | ivory, eggshell, ecru"),
    ("cream", 92, "off white", "creamy, cream coloured"),
    ("grey", 55, None, "greyish, greyer"),
    ("light grey", 75, "grey", "| silver grey, ash, ash grey"),
    ("dark grey", 35, "grey", "| slate, slate grey, gunmetal"),
    ("grey melange", 60, "grey", "| heather grey, melange, marl grey"),
    ("charcoal", 25, "grey", "| charcoal grey"),
    ("silver", 75, "grey", "silvery, silver toned"),
    ("steel", 62, "silver", "| steel grey, stainless steel, chrome"),
    ("metallic", 70, "silver", "| metal"),
    ("red", 45, None, "reddish, redder | scarlet, crimson, cherry, cherry red, fire red"),
    ("maroon", 25, "red", "| wine, oxblood"),
    ("burgundy", 25, "maroon", "| bordeaux, merlot"),
    ("rust", 42, "orange", "rusty | brick, brick red, terracotta"),
    ("pink", 75, None, "pinkish, pinky, pinker | rose, blush, rosy"),
    ("light pink", 85, "pink", "| baby pink, powder pink"),
    ("hot pink", 60, "pink", "| shocking pink"),
    ("magenta", 50, "pink", "| fuchsia, fuschia, fushia"),
    ("peach", 80, "pink", "peachy | apricot, salmon"),
    ("coral", 65, "orange", ""),
    ("orange", 62, None, "orangey, orangish | tangerine"),
    ("mustard", 65, "yellow", "| mustard yellow, ochre"),
    ("yellow", 88, None, "yellowish, yellower | lemon, canary"),
    ("gold", 68, "yellow", "golden, gold toned | gilded"),
    ("green", 50, None, "greenish, greener | emerald, kelly green, forest green, bottle green, jade"),
    ("olive", 40, "green", "| olive green, army green, military green"),
    ("sea green", 55, "green", "| seafoam, seafoam green"),
    ("lime green", 78, "green", "| lime"),
    ("fluorescent green", 82, "green", "| fluro green"),
    ("mint", 86, "green", "| mint green"),
    ("teal", 42, "blue", "| teal blue, petrol, petrol blue"),
    ("turquoise blue", 62, "blue", "| turquoise, aqua, aquamarine, cyan"),
    ("blue", 45, None, "bluish, blueish, bluer | cobalt, cobalt blue, royal blue, electric blue, denim blue"),
    ("light blue", 75, "blue", "| sky blue, baby blue, powder blue, ice blue"),
    ("navy blue", 15, "blue", "| navy, midnight blue, ink blue"),
    ("purple", 35, None, "purplish, purpley | violet, plum, grape, eggplant, aubergine"),
    ("lavender", 75, "purple", "| lilac"),
    ("mauve", 60, "purple", "| dusty rose"),
    ("brown", 30, None, "brownish, browner | chocolate, chocolate brown, walnut"),
    ("coffee brown", 25, "brown", "| coffee, espresso, mocha"),
    ("tan", 60, "brown", "| tan brown, caramel, cognac, camel"),
    ("khaki", 66, "beige", ""),
    ("beige", 84, "brown", "beigey | sand, sandy, oatmeal, fawn"),
    ("taupe", 58, "brown", "| greige, mushroom, mushroom brown"),
    ("nude", 80, "beige", "| flesh"),
    ("skin", 78, "nude", "| skin tone, skin coloured"),
    ("copper", 50, "brown", "coppery"),
    ("bronze", 45, "brown", "bronzed"),
    ("multi colour", 60, None, "multi, multicolour, multi coloured, multicoloured, multi color, multicolor, "
                                "multi colored, multicolored, multiple colours, many colours"),
    ("colourful", 60, "multi colour", "colorful | rainbow, bright colours, bright colored"),
)
COLOUR_LIGHTNESS: dict[str, int] = {name: light for name, light, _, _ in _COLOURS}
# Shade words before a basic colour ("pale pink", "dark red"): each pair is a concept in its colour's
# family (or the closer one given here), unless the table above names it.
_SHADE_MODIFIERS = ("light", "dark", "pale", "bright", "deep", "pastel", "neon", "dusty", "muted", "soft")
_BASIC = ("black", "white", "grey", "red", "pink", "orange", "yellow", "green", "blue", "purple", "brown", "beige")
_SHADE_LIGHTNESS = {"light": 20, "pale": 20, "pastel": 20, "soft": 10, "bright": 5, "neon": 5, "dark": -20,
                    "deep": -20, "dusty": -5, "muted": -5}
_SHADE_PARENT = {"dark red": "maroon", "deep red": "maroon", "dark blue": "navy blue", "deep blue": "navy blue",
                 "light purple": "lavender", "pale purple": "lavender", "pale pink": "light pink",
                 "pastel pink": "light pink", "neon pink": "hot pink", "bright pink": "hot pink",
                 "pale blue": "light blue", "pastel blue": "light blue", "neon green": "fluorescent green",
                 "pale grey": "light grey", "dusty pink": "mauve"}

# --- patterns, motifs, materials, details, shapes, styles, garments --------------------------------
# One concept a line: "name < family: forms | other names". Forms are the same word (plural, adjective,
# participle: "striped" is stripe); other names become concepts of their own under this one (relation
# "same"), so a caption keeps the word it used and a vocabulary without it still finds this concept.
_TABLES: dict[str, str] = {
    "shade": """
        light: light coloured, light colored, light colour, pale
        dark: dark coloured, dark colored, dark colour
        bright: vibrant
        neutral: neutral colour, neutral tone, neutral colours
    """,
    "pattern": """
        stripe: stripes, striped, stripy, stripey, strips, stripped, stipes | line
        pinstripe < stripe: pin stripe, pinstriped
        check: checks, checked, checkered, chequered, checkerboard
        plaid < check: | tartan, gingham, buffalo check
        polka dot: polka dots, dots, dot, dotted, spots, spotted, polka, spotty
        floral: flower, flowers, flowery, flowered, florals, blossom, blossoms
        solid: solid colour, solid colored, solid coloured, one colour, single colour, block colour
        plain < solid: plain coloured, unpatterned
        pattern: patterned, patterns, patternd, print, printed, prints
        graphic: graphics, image, images, picture, pictures, artwork, illustration, illustrations
        text: words, word, writing, written, lettering, letters, letter, message, messages, saying, slogan,
              slogans, wordy, wording, quote, quotes, typography, script, caption
        logo: logos, emblem, badge
        camouflage: camo, army print
        animal print: | leopard print, cheetah print, zebra print, snake print, snakeskin, tiger print
        leopard < animal print: leopard spots
        paisley:
        geometric: geo, geometrical
        abstract:
        tie dye: tiedye, tie dyed
        colour block: colorblock, colour blocked, color block, colorblocked, colour blocking, color blocking
        ombre: | gradient
        chevron: | zigzag, zig zag
        houndstooth:
        herringbone:
        argyle:
        tribal: | aztec, ikat
        tropical: | hawaiian
        embroidery: embroidered, embroideries
        sequin: sequins, sequined, sequinned
        glitter: glittery, | sparkle, sparkly, sparkling
        shiny: shine, shinier, shinny, | glossy, gloss, sheen, shimmer, shimmery, lustrous, patent
        matte: matt
        distressed: | ripped, torn
        washed: | acid wash, stone washed, faded
        textured: texture, textures
        quilted: quilting
        perforated: perforation, perforations
        two tone: two toned, two colour, two colours, two coloured, bicolour, bi colour
    """,
    "motif": """
        skull: skulls, | skeleton, skeletons
        heart: hearts
        star: stars
        character: characters, personage, personages, | cartoon, cartoons, superhero, superheroes
        animal: animals
        bird: birds
        butterfly: butterflies
        cat: cats, | kitten, kitty
        dog: dogs, | puppy
        flag: flags
        gun: guns
        anchor: anchors
    """,
    "material": """
        leather: leathers, | genuine leather, real leather
        faux leather < leather: | fake leather, pleather, vegan leather, synthetic leather, pu leather
        patent leather < leather:
        suede:
        faux suede < suede:
        denim: | chambray
        cotton:
        silk: silky, silken
        satin: | sateen
        lace: lacy
        knit: knitted, knits, knitwear
        crochet: crocheted
        wool: woolen, woollen, wooly, woolly
        velvet: velvety, | velour
        linen:
        chiffon:
        mesh: | netted, netting
        sheer: | see through, sea through, transparent, semi sheer
        lucite: | perspex
        canvas:
        rubber: rubbery
        nylon:
        polyester:
        fleece:
        fur: furry, | fuzzy
        faux fur < fur: | fake fur
        corduroy:
        tweed:
        jersey:
        stretch: stretchy, | spandex, lycra, elastic, elasticated
        plastic: | pvc, vinyl
        straw: | raffia
        cork:
        wood: wooden
    """,
    "detail": """
        sleeve: sleeves, sleeved
        strap: straps, strappy
        collar: collars, collared
        pocket: pockets
        button: buttons, buttoned, button down, button up, buttoned up, button front
        zipper: zip, zips, zipped, zippered, zippers, zip up, zip closure, zipper closure
        belt: belts, belted
        bow: bows
        buckle: buckles, buckled
        lace up: laces, shoelaces, shoe laces, shoelace, lacing, laced, lace ups, laceup, laceups, laced up
        velcro:
        hood: hooded, hoods
        fringe: fringes, fringed, | tassel, tassels, tasseled
        stud: studs, studded
        rhinestone: rhinestones, | diamante, jewels, jeweled, jewelled, gems, crystals, bejeweled
        bead: beads, beaded, beading
        ruffle: ruffles, ruffled, | frill, frills, frilly
        pleat: pleats, pleated
        slit: slits, side slit
        cutout: cut out, cutouts, cut outs
        wedge: wedges, wedge heel
        platform: platforms, platform sole
        drawstring: draw string, drawstrings
        trim: trims, trimmed, | piping
        embellishment: embellished, embellishments
        applique: appliques, | patch, patches
        cuff: cuffs, cuffed
        light up: lights up, light ups
    """,
    # The shape of a part: "more/less" grades it ("a less rounded toe") instead of adding or removing it.
    "feature": """
        long sleeve < sleeve: long sleeves, long sleeved, | full sleeve, full sleeves, full sleeved
        short sleeve < sleeve: short sleeves, short sleeved, | half sleeve, half sleeves, half sleeved
        three quarter sleeve < sleeve: three quarter sleeves, 3/4 sleeve, 3/4 sleeves, quarter sleeve,
              quarter sleeves, | elbow sleeve, elbow sleeves
        cap sleeve < sleeve: cap sleeves, cap sleeved
        puff sleeve < sleeve: puff sleeves, puffy sleeves, puffed sleeves
        bell sleeve < sleeve: bell sleeves
        sleeveless: sleeveles
        spaghetti strap < strap: spaghetti straps, | thin straps, thin strap
        v strap < strap: v straps, | t strap, t straps
        ankle strap < strap: ankle straps
        halter: halter neck, halterneck, halter top
        strapless:
        collarless:
        open back: open backed, | backless, low back
        open toe: open toed, open toes, | peep toe, peep toed
        closed toe: closed toed, closed toes
        pointed toe: pointy toe, pointed toes
        round toe: rounded toe, round toed
        square toe: square toed, square toes
        cap toe: cap toed, cap toes
        high heel < heel: high heeled, | stiletto heel
        low heel < heel: low heeled, | kitten heel, kitten heels
        block heel < heel: block heels, | chunky heel, chunky heels
        v neck < neckline: vneck, v necked, v neckline, | deep v
        crew neck < neckline: crewneck, crew, | round neck, round neckline
        scoop neck < neckline: scoop, scoop neckline
        turtleneck < neckline: turtle neck, | polo neck, roll neck
        high neck < neckline: high necked, high neckline, | mock neck
        boat neck < neckline: boat neckline, | bateau
        sweetheart < neckline: sweetheart neckline
        cowl neck < neckline: cowl
        off shoulder: off the shoulder, off shoulders, | cold shoulder, open shoulder
        one shoulder: one shouldered, | single shoulder
    """,
    # Parts every item of its kind has: a change when negated or graded ("no heel", "a higher heel"),
    # otherwise they only locate something ("a white sole").
    "part": """
        heel: heeled
        sole: soles
        toe: toes
        neckline: neck line, neck
        waist: waistline
        hem: hemline
    """,
    "shape": """
        long: | full length, floor length, longline
        short:
        mini: mini length
        midi: midi length, | mid length, calf length
        maxi: maxi length
        knee length: | knee high, above knee, below knee
        ankle length:
        fitted: form fitting, | snug
        tight < fitted: tight fitting
        slim fit < fitted: | slim
        skinny < fitted:
        bodycon < fitted: body con
        loose: loose fitting, loose fit
        baggy < loose:
        oversized < loose: oversize
        relaxed < loose: relaxed fit
        flowy < loose: flowing
        boxy < loose:
        a line: aline
        flare < a line: flared, fit and flare
        skater < a line:
        cropped: crop, | crop top
        high waist: high waisted, | high rise
        low rise: | low waist, low waisted
        wrap: wrapped, wrap around
        layered: layers, | tiered
        asymmetric: asymmetrical
        pencil:
        straight: straight fit, straight cut
        wide leg: wide legged, | palazzo
        flat: flat sole
        chunky: chunky sole, | thick sole
    """,
    "style": """
        casual: | informal, everyday, laid back
        formal: | dressy, smart, office, business, professional, office wear
        sporty: | athletic, active, activewear
        elegant: | classy, sophisticated, chic
        revealing: | sexy, skimpy, low cut
        modest: | conservative, covered
        simple: | basic, minimal, minimalist
        vintage: | retro, old fashioned
        bohemian: | boho, hippie
        preppy:
        edgy: | punk, grunge, gothic, goth, emo
        cute: | adorable, girly
        trendy: fashionable, | stylish, modern
        fancy: | ornate, glamorous, glam
        feminine: | ladylike
        masculine: | manly
    """,
    "gender": """
        men: man, mens, menswear, | male, gents, gentlemen, gentleman, guys, for him
        women: woman, womens, womenswear, | ladies, lady, female, for her
        boys: boy, | boyish
        girls: girl
        unisex: | gender neutral, for both, for everyone
        kids: kid, | children, child, childrens
    """,
    "usage": """
        sports: sport, sportswear, | gym, training, workout, running, athleisure
        ethnic: | traditional, indian, desi, festive ethnic
        smart casual: smart casuals, | semi formal
        party: partywear, party wear, | night out, clubbing
        travel: | travelling, traveling, trip
    """,
    "season": """
        summer: summery, summertime
        winter: wintery, wintry, | cold weather
        fall: | autumn, autumnal
        spring: springtime
    """,
}

# Garment nouns. Generic ones only name the item ("the shirt is black", "same shoes"); specific ones are a
# change when asserted ("boots with buckles", "a jacket instead of the cap").
_GENERIC_GARMENTS = """
    dress: dresses, | frock, gown
    shirt: shirts
    top: tops, | blouse, blouses
    t shirt: tshirt, tshirts, t shirts, | tee, tees, tee shirt, tee shirts
    shoe: shoes, | footwear
    clothing: clothes, | garment, outfit, apparel
    bag: bags
"""
_GARMENTS = """
    boot: boots, | booties, bootie
    ankle boot < boot: ankle boots, | chelsea boot, chelsea boots
    sandal: sandals, sandles, sandle
    sneaker: sneakers, | kicks
    trainer < sneaker: trainers
    tennis shoe < sneaker: tennis shoes
    galosh: galoshes, | rain boot, rain boots, wellies, wellington
    slingback: slingbacks, sling back, sling backs
    pump: pumps, | court shoe, court shoes
    loafer: loafers, | moccasin, moccasins
    slipper: slippers, | slides
    flip flop: flip flops, flipflop, flipflops, | chappal, chappals
    mule: mules, | clog, clogs
    oxford: oxfords, | brogue, brogues, wingtip, wingtips, derby, derbies
    espadrille: espadrilles
    casual shoe < shoe: casual shoes
    sports shoe < shoe: sports shoes, sport shoes, | running shoe, running shoes, athletic shoes, gym shoes
    formal shoe < shoe: formal shoes, | dress shoe, dress shoes, office shoes
    heels < shoe: | high heels, heeled shoes, stilettos
    flats < shoe: | ballet flats, ballerinas, ballerina, flat shoes
    jacket: jackets, | windcheater, windbreaker, bomber, blazer, blazers
    coat: coats, | overcoat, trench coat
    sweater: sweaters, | jumper, jumpers, pullover, pullovers, cardigan, cardigans
    sweatshirt: sweatshirts, sweat shirt, | hoodie, hoodies
    tank top: tank tops, | tank, tanks, camisole, cami, vest top
    tunic: tunics
    kurta: kurtas
    kurti: kurtis
    skirt: skirts
    jeans: jean
    trouser: trousers, | pants, slacks, chinos
    track pants: trackpants, track pant, | joggers, jogger, sweatpants
    shorts: | short pants, bermudas
    leggings: legging, | jeggings
    tights < leggings: | stockings
    jumpsuit: jumpsuits, | romper, rompers, playsuit, overalls, dungarees
    polo: polos, polo shirt, polo shirts
    cap: caps, baseball cap, | beanie, beanies
    hat: hats, | fedora
    handbag: handbags, | purse, purses, tote, totes, shoulder bag, sling bag
    clutch: clutches
    backpack: backpacks, | rucksack, rucksacks, school bag
    wallet: wallets
    watch: watches, wristwatch, wrist watch
    sunglasses: sunglass, | sunnies, aviators, aviator, goggles
    frame: frames, | spectacles, eyeglasses, glasses
    sock: socks
    scarf: scarves, scarfs, | stole, stoles, muffler, mufflers, dupatta
    tie: ties, necktie, neckties
    bow tie < tie: bow ties, bowtie, bowties
    saree: sarees, | sari, saris
"""

# Comparative forms with the quality they grade and the direction (+1: more of it). "darker" is less
# light; "shorter" less long. The more/less + adjective form is handled by the grammar.
COMPARATIVES: dict[str, tuple[str, int]] = {
    "darker": ("lightness", -1), "lighter": ("lightness", +1), "brighter": ("brightness", +1),
    "paler": ("lightness", +1), "deeper": ("lightness", -1), "duller": ("brightness", -1),
    "bolder": ("boldness", +1), "warmer": ("warmth", +1), "cooler": ("warmth", -1),
    "shorter": ("length", -1), "longer": ("length", +1), "tighter": ("tightness", +1),
    "looser": ("tightness", -1), "higher": ("height", +1), "lower": ("height", -1),
    "thinner": ("thickness", -1), "thicker": ("thickness", +1), "wider": ("width", +1),
    "broader": ("width", +1), "narrower": ("width", -1), "bigger": ("size", +1), "larger": ("size", +1),
    "smaller": ("size", -1), "pointier": ("pointedness", +1), "rounder": ("roundness", +1),
    "softer": ("softness", +1), "harder": ("softness", -1), "sturdier": ("sturdiness", +1),
    "plainer": ("plainness", +1), "simpler": ("plainness", +1), "busier": ("plainness", -1),
    "fancier": ("fanciness", +1), "chunkier": ("chunkiness", +1), "flatter": ("height", -1),
    "heavier": ("weight", +1), "thicker-soled": ("thickness", +1), "slimmer": ("tightness", +1),
    "sleeker": ("sleekness", +1), "sexier": ("revealing", +1), "cuter": ("cuteness", +1),
    "dressier": ("formality", +1), "classier": ("elegance", +1), "sportier": ("sportiness", +1),
    "baggier": ("tightness", -1), "fuller": ("fullness", +1), "fitter": ("tightness", +1),
    "lighter-coloured": ("lightness", +1), "darker-coloured": ("lightness", -1),
}
# more X / less X where X is one of these: the comparative's quality is X itself.


def _parse_table(kind: str, text: str, generic: bool = False) -> list[Concept]:
    out: list[Concept] = []
    for raw in _lines(text):
        head, _, rest = raw.partition(":")
        name, _, parent = head.partition("<")
        name = name.strip()
        forms, _, names = rest.partition("|")
        # One concept per other name: "ladies" and "lady" are one word (the shorter names it).
        grouped: dict[str, list[str]] = {}
        for other in _split(names):
            grouped.setdefault(" ".join(lemma(w) for w in other.replace("-", " ").split()), []).append(other)
        out.append(Concept(name, kind, _split(forms), parent.strip() or None, generic))
        for spellings in grouped.values():
            first, *rest_ = sorted(spellings, key=lambda x: (len(x), x))
            out.append(Concept(first, kind, tuple(rest_), name, generic, relation="same"))
    return out


def _lines(text: str) -> list[str]:
    """Table lines, a line that starts without a ':' continuing the one before."""
    lines: list[str] = []
    for line in text.strip().splitlines():
        line = line.strip()
        if not line:
            continue
        if lines and ":" not in line.split(",")[0]:
            lines[-1] += " " + line
        else:
            lines.append(line)
    return lines


def _colour_concepts() -> list[Concept]:
    out: list[Concept] = []
    for name, light, parent, spellings in _COLOURS:
        forms, _, names = spellings.partition("|")
        out.append(Concept(name, "colour", _split(forms), parent))
        for other in _split(names):
            out.append(Concept(other, "colour", (), name, relation="same"))
            COLOUR_LIGHTNESS[other] = light
    spelled = {s for c in out for s in (c.name, *c.surfaces)}
    for mod in _SHADE_MODIFIERS:
        for base in _BASIC:
            name = f"{mod} {base}"
            if name not in spelled:
                out.append(Concept(name, "colour", (), _SHADE_PARENT.get(name, base), relation="shade"))
                COLOUR_LIGHTNESS[name] = max(0, min(100, COLOUR_LIGHTNESS[base] + _SHADE_LIGHTNESS[mod]))
    return out


def _split(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _build() -> dict[str, Concept]:
    concepts: list[Concept] = _colour_concepts()
    for kind, table in _TABLES.items():
        concepts += _parse_table(kind, table)
    concepts += _parse_table("garment", _GENERIC_GARMENTS, generic=True)
    concepts += _parse_table("garment", _GARMENTS)
    by_name: dict[str, Concept] = {}
    for c in concepts:
        if c.name in by_name:
            raise ValueError(f"lexicon: concept {c.name!r} defined twice")
        by_name[c.name] = c
    for c in concepts:
        if c.parent is not None and c.parent not in by_name:
            raise ValueError(f"lexicon: {c.name!r} has unknown parent {c.parent!r}")
    return by_name


CONCEPTS: dict[str, Concept] = _build()


# --- cue words of the role grammar (lemmas: apostrophes dropped, "doesn't" is "doesnt") -------------
NEGATIONS = frozenset("""
    not no without never non nor none nothing neither lack lacks lacking minus except excluding nt isnt arent
    doesnt dont didnt wasnt werent hasnt havent hadnt cant cannot wont shouldnt wouldnt aint nope
""".split())
REMOVE_PHRASES = ("remove", "removed", "removing", "lose", "losing", "drop", "dropping", "ditch", "eliminate",
                  "delete", "skip", "get rid of", "take off", "take away", "take out", "no more", "do away with",
                  "lose the", "fewer", "cut out")
INSTEAD_PHRASES = ("instead of", "rather than", "in place of", "other than", "as opposed to", "versus", "vs",
                   "in lieu of", "not like the", "compared to")
REPLACE_VERBS = frozenset("""
    replace replacing replaced swap swapping swapped switch switching switched exchange exchanging trade
    change changing changed turn turning convert converting
""".split())
SUBSTITUTE_VERBS = frozenset({"substitute", "substituting"})  # "substitute B for A": the new one first
CONNECTORS = frozenset({"with", "by", "for", "to", "into", "->"})
ADD_PHRASES = ("in", "into", "make", "made", "making", "want", "wanted", "wants", "prefer", "preferred", "with",
               "has", "have", "having", "is", "are", "be", "become", "add", "adding", "added", "featuring",
               "feature", "features", "show", "shows", "showing", "get", "need", "needs", "wear", "go for",
               "opt for", "choose", "pick", "try", "like it in", "come in", "comes in", "available in",
               "would be", "should be", "needs to be", "looks", "look", "was", "were", "for")
POSTFIX_ADD = frozenset({"version", "versions", "please", "pls", "plz", "instead", "one", "ones", "variant", "edition",
                         "option", "pair", "look", "style", "colorway", "colourway"})
POSTFIX_REMOVE = frozenset({"out", "gone", "away"})
SAME_WORDS = frozenset({"same", "similar", "identical", "like", "keep", "keeping", "exact"})
CONTRAST_WORDS = frozenset({"but", "though", "although", "however", "yet", "except", "whereas", "while"})
MORE_WORDS = frozenset({"more", "extra", "added"})
LESS_WORDS = frozenset({"less", "fewer", "lesser"})
# Prepositions that start a new phrase: a negation's reach ends there once it has negated something
# ("no words on the graphic": the graphic stays).
PREPOSITIONS = frozenset("""
    on at across around along near under over above below behind inside outside between through throughout
    of from within beside upon toward towards
""".split())
DETERMINERS = frozenset("a an the some this that these those its their his her my your any".split())
# Words a cue reaches across ("make it a bit more white", "in a lighter shade of"): not content.
FILLERS = frozenset("""
    a an the it its this that these those one ones some bit little lot lots much very slightly really pure just
    also too so quite all whole entire kind sort something thing things item colour color colours colors
    shade shades tone tones hue please pls plz maybe perhaps nice nicely totally completely fully mostly
    mainly overall same style type look version i id im would like wed could can should want to be of
    entirely instead
""".split())
# Never attributes on their own, even where a vocabulary lists them (FashionIQ's attribute files name
# places, bands and cartoon characters, and words such as "please" or "life").
NOT_ATTRIBUTES = frozenset("""
    angeles art babe bed big box california camera candy cities city civil cloud coast combo cut dream dreamer
    dynamite edge eiffel fair fan field floyd france fresh frida gem genuine glass halen heat heroes internet
    island isle joie kahlo killin kiss kurt la lakers leave led life loop love lover loyal luxe map marilyn
    meow miami mina mob monroe moon morning muse nets new york night notorious ny nyc oil pan paradise paris
    please power rad raw rebel reverse rise roll rolling roman run seam shopping shore sky smile spirit
    springs standout stone stones studio sun surfer swiss taco texas tile tokyo tower trouble tupac van venice
    wake west wifey wild woke youth zeppelin zig basquiat beatles audrey hepburn snoopy spongebob tasmanian
    barbie brooklyn mickey minnie medium mixed mod dye wash different similar nicer better design identical
    same style look version colour color one thing shade tone kind type item piece design designs detail
    details shoulder shoulders
""".split()) | {"marilyn monroe", "rolling stones", "brooklyn nets", "mickey mouse", "minnie mouse", "new york",
                "palm springs", "free spirit", "garden party", "van halen"}
# Common English words a typo is never corrected from (the guard: "bold" is not "gold", "tank" not "tan").
COMMON_WORDS = frozenset("""
    about above after again against also always another anything around away back bold bolder both bottom
    bought brand bright came cant care case cause chest clean clear close cold come comes cool could cover
    cute dark darker does done down each easy else even ever every face fact fine first fits five flat flip
    four free from front full gave give given goes going gone good great half hand hands hang hard have
    here high hold hole holes home inch inside into just keep kind know large last late lead left less
    light like line lines little look looks loose lose lost made main make many mark mean more most much
    must name near neat need never nice none note only open other over pair part pick piece place plain
    play plus point poke print pull pure push rather real really rest ride right ring room round same
    save seam seen sell send sets shape share sharp shed shoe show shown side sign size slim small soft
    some sort spot step still stop such sure take tall tank than that thats them then there these they
    thick thin thing think this those tied time tiny tone took total true turn type under upper used very
    view want warm wash wave wear wearing well were what when where which while white whole wide wider
    will wing wings wise with within word work worn would wrap yeah year your zero band bands bend bent
    bind bite blend block blow blue bone book boot boots born bowl cape card cart cast cell chain chart
    chip cloth coat code comb cord core cost crew crop cube curl dash data dear deep desk dial dish dose
    drag draw drew drop dual dust duty edge fade fall fast feel feet felt file fill film find fire firm
    fish flag flaw fold folk fond font food foot form frame fuel fund fuse gain game gate gear gift girl
    glad glow goal gold grab grow hair hall hard head heat heel held hell help hide hint hire holy hood
    hook hope horn host huge hung hunt idea iron item jump junk keen kept kick kill king knee knot lace
    lack lady laid lake lamp land lane lash lawn lazy leaf lean lens lift limb lime link lion list load
    loan lock logo long loop lord loss loud luck mail male mall mask mass mate meal meat meet mesh mild
    mile mind mine miss mode mood moon move myth nail neck nest news next node none norm nose odds okay
    pace pack page pain pale palm park past path peak pick pile pink pipe plan pole pool poor port pose
    post pour pray prey puff pump rack rain rank rare rate read rear rely rent rich rise risk road rock
    role roof root rope rose rule rush safe sail sale salt sand seat seed seek self shop shot shut sick
    silk sing sink site skin slip slot snow sock soil sole song soon soul soup spin star stay suit swim
    tail tale talk tape task team tear tell tend term test text tide tile till tips toes told toll tool
    tops tour town trap tree trim trip tube tune twin unit upon user vast vest vote wait wake walk wall
    ward ware wash weak week west wild wind wine wire wish wolf wood wool yard yarn zone also than then
    color colour colors colours colored coloured kinda sorta gonna wanna looking please thanks thank
""".split())
