"""Synthetic patients and HL7 traffic for benchmarks, fuzzing and matching metrics.

Everything here is generated from the project's own name and code lists; no
real person is described. Each generated patient has a true identity
(``person_id``) so that matching and de-duplication can be scored.

The generator can produce:

- VXU^V04 messages with 1-6 doses, from several clinics, with repeat
  patients, duplicate doses (the same event from two sources), and a share of
  bad messages (unknown CVX, future dates, missing identifiers);
- QBP^Q11 Z34/Z44 queries for generated patients;
- noisy copies of a patient (typos, nicknames, swapped names, transposed
  birth dates, missing fields) and look-alikes (twins, siblings, strangers
  with the same common name, birth date and sex, and a boy and a girl with
  near names, a birth date one digit off and the same mother's maiden name).

With ``skewed_names`` names are drawn as in a real population, a few common
and many rare (Zipf-like weights over the lists, the first names the
commonest), so that agreeing on a name means more or less by the name.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

GIVEN_F = [
    "Sofia",
    "Isabella",
    "Camila",
    "Valentina",
    "Mia",
    "Emma",
    "Olivia",
    "Ava",
    "Luna",
    "Amelia",
    "Mila",
    "Aria",
    "Evelyn",
    "Harper",
    "Abigail",
    "Emily",
    "Elizabeth",
    "Sofia",
    "Avery",
    "Ella",
    "Scarlett",
    "Grace",
    "Chloe",
    "Victoria",
    "Riley",
    "Nora",
    "Lily",
    "Zoe",
    "Hannah",
    "Layla",
    "Leah",
    "Lillian",
    "Addison",
    "Aubrey",
    "Ellie",
    "Stella",
    "Natalie",
    "Maya",
    "Hazel",
    "Aurora",
    "Savannah",
    "Brooklyn",
    "Bella",
    "Claire",
    "Skylar",
    "Lucy",
    "Paisley",
    "Everly",
    "Anna",
    "Caroline",
    "Nova",
    "Genesis",
    "Emilia",
    "Kennedy",
    "Samantha",
    "Ximena",
    "Madelyn",
    "Allison",
    "Gabriella",
    "Sadie",
    "Ariana",
    "Jasmine",
    "Naomi",
    "Kimberly",
    "Mei",
    "Ananya",
    "Priya",
    "Fatima",
    "Aaliyah",
    "Daniela",
    "Guadalupe",
    "Mariana",
    "Jimena",
    "Renata",
    "Xochitl",
    "Linh",
    "Thao",
    "Hoa",
    "Ngoc",
    "Jia",
    "Yuna",
    "Sakura",
    "Haruka",
    "Min-jun",
    "Seo-yeon",
    "Imani",
    "Nia",
    "Zainab",
    "Amara",
    "Esperanza",
    "Marisol",
]
GIVEN_M = [
    "Liam",
    "Noah",
    "Oliver",
    "Elijah",
    "James",
    "William",
    "Benjamin",
    "Lucas",
    "Henry",
    "Alexander",
    "Mason",
    "Michael",
    "Ethan",
    "Daniel",
    "Jacob",
    "Logan",
    "Jackson",
    "Levi",
    "Sebastian",
    "Mateo",
    "Jack",
    "Owen",
    "Theodore",
    "Aiden",
    "Samuel",
    "Joseph",
    "John",
    "David",
    "Wyatt",
    "Matthew",
    "Luke",
    "Asher",
    "Carter",
    "Julian",
    "Grayson",
    "Leo",
    "Jayden",
    "Gabriel",
    "Isaac",
    "Lincoln",
    "Anthony",
    "Hudson",
    "Dylan",
    "Ezra",
    "Thomas",
    "Charles",
    "Christopher",
    "Jaxon",
    "Maverick",
    "Josiah",
    "Isaiah",
    "Andrew",
    "Elias",
    "Joshua",
    "Nathan",
    "Caleb",
    "Ryan",
    "Adrian",
    "Miles",
    "Eli",
    "Nolan",
    "Santiago",
    "Diego",
    "Emiliano",
    "Alejandro",
    "Jose",
    "Juan",
    "Luis",
    "Carlos",
    "Miguel",
    "Angel",
    "Jesus",
    "Rafael",
    "Arjun",
    "Rohan",
    "Vikram",
    "Wei",
    "Jun",
    "Hiroshi",
    "Kenji",
    "Duc",
    "Minh",
    "Tuan",
    "Omar",
    "Yusuf",
    "Ibrahim",
    "Kwame",
    "Malik",
    "Darnell",
    "Tyrone",
    "Andres",
    "Joaquin",
]
FAMILY = [
    "Garcia",
    "Hernandez",
    "Lopez",
    "Martinez",
    "Rodriguez",
    "Gonzalez",
    "Perez",
    "Sanchez",
    "Ramirez",
    "Torres",
    "Flores",
    "Rivera",
    "Gomez",
    "Diaz",
    "Cruz",
    "Morales",
    "Reyes",
    "Gutierrez",
    "Ortiz",
    "Chavez",
    "Ramos",
    "Ruiz",
    "Alvarez",
    "Mendoza",
    "Castillo",
    "Jimenez",
    "Vasquez",
    "Romero",
    "Herrera",
    "Medina",
    "Aguilar",
    "Vargas",
    "Castro",
    "Guzman",
    "Fernandez",
    "Salazar",
    "Soto",
    "Contreras",
    "Delgado",
    "Pena",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Hill",
    "Green",
    "Adams",
    "Baker",
    "Nelson",
    "Mitchell",
    "Campbell",
    "Roberts",
    "Carter",
    "Phillips",
    "Evans",
    "Turner",
    "Parker",
    "Collins",
    "Edwards",
    "Stewart",
    "Morris",
    "Nguyen",
    "Tran",
    "Le",
    "Pham",
    "Huynh",
    "Hoang",
    "Phan",
    "Vu",
    "Vo",
    "Dang",
    "Bui",
    "Do",
    "Ho",
    "Ngo",
    "Duong",
    "Ly",
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Huang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sun",
    "Ma",
    "Zhu",
    "Hu",
    "Guo",
    "Lin",
    "Kim",
    "Park",
    "Choi",
    "Jung",
    "Kang",
    "Cho",
    "Yoon",
    "Jang",
    "Patel",
    "Shah",
    "Singh",
    "Kumar",
    "Sharma",
    "Gupta",
    "Khan",
    "Ali",
    "Ahmed",
    "Hussain",
    "Tanaka",
    "Suzuki",
    "Watanabe",
    "Sato",
    "Yamamoto",
    "Nakamura",
    "Okafor",
    "Mensah",
    "O'Brien",
    "McDonald",
    "Fitzgerald",
    "De-la-Cruz",
    "Van-Dyke",
    "St-John",
    "Santos",
    "Silva",
    "Oliveira",
    "Costa",
    "Pereira",
    "Almeida",
]
NICKNAMES = {
    "Elizabeth": "Liz",
    "William": "Will",
    "Alexander": "Alex",
    "Benjamin": "Ben",
    "Michael": "Mike",
    "Daniel": "Dan",
    "Jacob": "Jake",
    "Matthew": "Matt",
    "Samuel": "Sam",
    "Joseph": "Joe",
    "Christopher": "Chris",
    "Joshua": "Josh",
    "Nathan": "Nate",
    "Theodore": "Teddy",
    "Abigail": "Abby",
    "Samantha": "Sam",
    "Victoria": "Vicky",
    "Gabriella": "Gabby",
    "Isabella": "Bella",
    "Natalie": "Nat",
    "Jose": "Pepe",
    "Alejandro": "Alex",
    "Guadalupe": "Lupe",
    "Francisco": "Paco",
    "Anthony": "Tony",
    "Andrew": "Andy",
    "Charles": "Charlie",
    "Thomas": "Tom",
    "James": "Jim",
    "Jasmine": "Jazz",
}
STREETS = [
    "Oak",
    "Maple",
    "Cedar",
    "Pine",
    "Elm",
    "Walnut",
    "Sycamore",
    "Laurel",
    "Madrone",
    "Sequoia",
    "Redwood",
    "Mission",
    "Alameda",
    "Vista",
    "Sierra",
    "Olive",
    "Palm",
    "Lemon",
    "Orange",
    "Grove",
]
CITIES = (
    ("Sacramento", "958"),
    ("Fresno", "937"),
    ("Oakland", "946"),
    ("San Jose", "951"),
    ("Los Angeles", "900"),
    ("Anaheim", "928"),
    ("Riverside", "925"),
    ("San Diego", "921"),
    ("Redding", "960"),
    ("Salinas", "939"),
    ("Stockton", "952"),
    ("Bakersfield", "933"),
)
CLINICS = ("CLINIC1", "CLINIC2", "PEDSGROUP", "COUNTYHD", "SCHOOLRN", "PHARMACY7")

#: A boy's and a girl's given name one typo apart, or the same (unisex).
BOY_GIRL = (
    ("Daniel", "Daniela"),
    ("Gabriel", "Gabriella"),
    ("Angel", "Angela"),
    ("Riley", "Riley"),
    ("Avery", "Avery"),
)
#: How many names of each list count as common (look-alikes are drawn from them).
COMMON = 10


def _zipf(n: int, exponent: float = 0.5) -> list[float]:
    """Weights for ranks 1..n: the commonest of 150 family names about 4 %."""
    return [1 / (rank**exponent) for rank in range(1, n + 1)]


#: (CVX, MVX, age in days when usually given): a childhood schedule.
CHILD_DOSES = (
    ("08", "MSD", 0),
    ("08", "MSD", 35),
    ("20", "PMC", 61),
    ("10", "PMC", 61),
    ("49", "MSD", 61),
    ("133", "PFR", 61),
    ("116", "MSD", 61),
    ("110", "SKB", 122),
    ("133", "PFR", 122),
    ("116", "MSD", 122),
    ("20", "PMC", 183),
    ("08", "MSD", 183),
    ("150", "SKB", 200),
    ("03", "MSD", 366),
    ("21", "MSD", 366),
    ("83", "MSD", 366),
    ("133", "PFR", 380),
    ("48", "PMC", 380),
    ("20", "PMC", 470),
    ("83", "MSD", 550),
    ("94", "MSD", 1500),
    ("130", "PMC", 1500),
    ("115", "SKB", 4100),
    ("165", "MSD", 4100),
    ("114", "PMC", 4100),
)


@dataclass(frozen=True)
class Person:
    """A true identity and its demographics."""

    person_id: int
    family: str
    given: str
    middle: str
    sex: str
    birth_date: date
    mother_family: str
    mother_given: str
    street: str
    city: str
    zip_code: str
    phone: str
    multiple_birth: str = "N"
    birth_order: int | None = None


@dataclass(frozen=True)
class DoseEvent:
    """A true vaccination event."""

    event_id: int
    cvx: str
    mvx: str
    given_on: date
    lot: str
    clinic: str


@dataclass
class Submission:
    """A generated VXU and the truth behind it."""

    text: str
    control_id: str
    sender: str
    person_id: int
    mrn: str
    events: list[int] = field(default_factory=list)
    bad: str = ""


class Synth:
    """A seeded generator of persons, submissions and queries."""

    def __init__(
        self, seed: int = 7, today: date | None = None, *, skewed_names: bool = False
    ) -> None:
        self.rng = random.Random(seed)
        self.today = today or date(2026, 11, 1)
        self.skewed_names = skewed_names
        self._person = 0
        self._event = 0
        self._control = 0

    def _name(self, names: list[str], common: bool = False) -> str:
        if common:
            return self.rng.choice(names[:COMMON])
        if self.skewed_names:
            return self.rng.choices(names, weights=_zipf(len(names)))[0]
        return self.rng.choice(names)

    # -- people -------------------------------------------------------------

    def person(
        self,
        *,
        sibling_of: Person | None = None,
        twin_of: Person | None = None,
        common: bool = False,
    ) -> Person:
        """A new true identity (optionally a sibling or twin of another, or with a common name)."""
        rng = self.rng
        self._person += 1
        sex = rng.choice("FM")
        given = self._name(GIVEN_F if sex == "F" else GIVEN_M, common)
        middle = (
            self._name(GIVEN_F if sex == "F" else GIVEN_M) if rng.random() < 0.6 else ""
        )
        if twin_of is not None:
            base = twin_of
            return Person(
                self._person,
                base.family,
                _different(rng, given, base.given, sex),
                middle,
                sex,
                base.birth_date,
                base.mother_family,
                base.mother_given,
                base.street,
                base.city,
                base.zip_code,
                base.phone,
                "Y",
                2,
            )
        if sibling_of is not None:
            base = sibling_of
            birth = base.birth_date + timedelta(
                days=rng.choice((-1, 1)) * rng.randint(300, 2000)
            )
            birth = min(birth, self.today - timedelta(days=30))
            return Person(
                self._person,
                base.family,
                _different(rng, given, base.given, sex),
                middle,
                sex,
                birth,
                base.mother_family,
                base.mother_given,
                base.street,
                base.city,
                base.zip_code,
                base.phone,
            )
        age_days = (
            rng.randint(30, 18 * 365)
            if rng.random() < 0.85
            else rng.randint(18 * 365, 80 * 365)
        )
        city, prefix = rng.choice(CITIES)
        return Person(
            self._person,
            self._name(FAMILY, common),
            given,
            middle,
            sex,
            self.today - timedelta(days=age_days),
            self._name(FAMILY),
            rng.choice(GIVEN_F),
            f"{rng.randint(10, 9999)} {rng.choice(STREETS)} St",
            city,
            f"{prefix}{rng.randint(10, 99)}",
            f"{rng.choice(('916', '559', '510', '408', '213', '714', '951', '619'))}{rng.randint(2000000, 9999999)}",
        )

    def twins(self) -> tuple[Person, Person]:
        """Two persons born together: same family, birth date, address, mother."""
        first = replace(self.person(), multiple_birth="Y", birth_order=1)
        return first, self.person(twin_of=first)

    def lookalike(self, of: Person) -> Person:
        """A stranger with the same name, birth date and sex, and nothing else shared.

        Another mother's maiden name, phone, street, ZIP and middle initial.
        """
        rng = self.rng
        self._person += 1
        names = GIVEN_F if of.sex == "F" else GIVEN_M
        middle = of.middle
        while middle[:1] == of.middle[:1]:
            middle = rng.choice(names)
        return replace(
            of,
            person_id=self._person,
            middle=middle,
            mother_family=_other(rng, FAMILY, of.mother_family),
            mother_given=rng.choice(GIVEN_F),
            **self._elsewhere(of),
        )

    def lookalike_pair(self) -> tuple[Person, Person]:
        """A child with a common name and middle name, and a look-alike stranger."""
        base = self.person(common=True)
        if not base.middle:
            base = replace(
                base, middle=self.rng.choice(GIVEN_F if base.sex == "F" else GIVEN_M)
            )
        return base, self.lookalike(base)

    def boy_and_girl(self) -> tuple[Person, Person]:
        """A boy and a girl: near given names, a birth date one digit off, and the same mother's maiden name by chance."""
        rng = self.rng
        boy_name, girl_name = rng.choice(BOY_GIRL)
        boy = replace(self.person(common=True), sex="M", given=boy_name)
        born = boy.birth_date
        # The day's last digit changed (14 -> 17), or its first (30 -> 20).
        days = [d for d in range(1, 29) if d // 10 == born.day // 10 and d != born.day]
        day = rng.choice(days) if days else born.day - 10
        self._person += 1
        girl = replace(
            boy,
            person_id=self._person,
            sex="F",
            given=girl_name,
            middle="",
            birth_date=born.replace(day=day),
            mother_given=rng.choice(GIVEN_F),
            **self._elsewhere(boy),
        )
        return boy, girl

    def _elsewhere(self, of: Person) -> dict[str, str]:
        """Another street, city, ZIP and phone than ``of``'s."""
        rng = self.rng
        city, prefix = rng.choice(CITIES)
        zip_code = of.zip_code
        while zip_code[:5] == of.zip_code[:5]:
            zip_code = f"{prefix}{rng.randint(10, 99)}"
        phone = of.phone
        while phone[-7:] == of.phone[-7:]:
            phone = f"{of.phone[:3]}{rng.randint(2000000, 9999999)}"
        street = (
            f"{rng.randint(10, 9999)} {_other(rng, STREETS, of.street.split()[-2])} St"
        )
        return {"street": street, "city": city, "zip_code": zip_code, "phone": phone}

    def noisy(self, person: Person) -> Person:
        """A copy of a person as another clinic might have typed it."""
        rng = self.rng
        p = person
        roll = rng.random()
        if roll < 0.25:
            p = replace(p, given=_typo(rng, p.given))
        elif roll < 0.40:
            p = replace(p, family=_typo(rng, p.family))
        elif roll < 0.50 and p.given in NICKNAMES:
            p = replace(p, given=NICKNAMES[p.given])
        elif roll < 0.55:
            p = replace(p, family=p.given, given=p.family)
        elif (
            roll < 0.62
            and p.birth_date.day <= 12
            and p.birth_date.day != p.birth_date.month
        ):
            p = replace(
                p,
                birth_date=date(
                    p.birth_date.year, p.birth_date.day, p.birth_date.month
                ),
            )
        elif roll < 0.70:
            p = replace(p, family=p.family.upper(), given=p.given.lower())
        if rng.random() < 0.3:
            p = replace(p, street="", city="", zip_code="")
        if rng.random() < 0.3:
            p = replace(p, phone="")
        if rng.random() < 0.2:
            p = replace(p, middle="")
        return p

    # -- doses --------------------------------------------------------------

    def doses_for(self, person: Person, count: int | None = None) -> list[DoseEvent]:
        """Doses this person plausibly received, in date order."""
        rng = self.rng
        age = (self.today - person.birth_date).days
        eligible = [d for d in CHILD_DOSES if d[2] <= age]
        if not eligible:
            eligible = [CHILD_DOSES[0]]
        n = count if count is not None else rng.randint(1, 6)
        picked = sorted(rng.sample(eligible, min(n, len(eligible))), key=lambda d: d[2])
        out = []
        for cvx, mvx, day in picked:
            self._event += 1
            given_on = min(
                person.birth_date + timedelta(days=day + rng.randint(0, 20)), self.today
            )
            out.append(
                DoseEvent(
                    self._event,
                    cvx,
                    mvx,
                    given_on,
                    f"L{rng.randint(10000, 99999)}",
                    rng.choice(CLINICS),
                )
            )
        return out

    # -- messages -----------------------------------------------------------

    def control_id(self) -> str:
        """A fresh MSH-10."""
        self._control += 1
        return f"SYN{self._control:09d}"

    def vxu(
        self,
        person: Person,
        doses: list[DoseEvent],
        *,
        sender: str,
        mrn: str,
        historical: bool = False,
        bad: str = "",
    ) -> Submission:
        """A VXU for a person as ``sender`` knows them."""
        control = self.control_id()
        mother = f"{person.mother_family}^{person.mother_given}^^^^^M"
        addr = (
            f"{person.street}^^{person.city}^CA^{person.zip_code}^USA^L"
            if person.street
            else ""
        )
        phone = (
            f"^PRN^PH^^^{person.phone[:3]}^{person.phone[3:]}" if person.phone else ""
        )
        pid3 = "" if bad == "no-pid3" else f"{mrn}^^^{sender}^MR"
        multiple = person.multiple_birth if person.multiple_birth == "Y" else ""
        order = str(person.birth_order) if person.birth_order else ""
        segs = [
            f"MSH|^~\\&|EHR|{sender}|CAIRN|CAIRN|{self.today:%Y%m%d}120000-0800||VXU^V04^VXU_V04|{control}|P|2.5.1|||ER|AL|||||Z22^CDCPHINVS",
            f"PID|1||{pid3}||{person.family}^{person.given}^{person.middle}^^^^L|{mother}|{person.birth_date:%Y%m%d}|{person.sex}||2106-3^White^CDCREC|{addr}||{phone}|||||||||2186-5^Not Hispanic^CDCREC||{multiple}|{order}",
            "PD1|||||||||||02^Reminder/recall any method^HL70215|N|20200101|||A|20200101|20200101",
        ]
        for i, dose in enumerate(doses):
            cvx = "XXX" if bad == "unknown-cvx" and i == 0 else dose.cvx
            when = (
                date(2099, 1, 1) if bad == "future-date" and i == 0 else dose.given_on
            )
            filler = f"{sender}-{dose.event_id}"
            segs.append(f"ORC|RE||{filler}^{sender}")
            if historical or dose.clinic != sender:
                segs.append(
                    f"RXA|0|1|{when:%Y%m%d}||{cvx}^vaccine^CVX|999|||01^Historical^NIP001|||||||||||CP|A"
                )
            else:
                segs.append(
                    f"RXA|0|1|{when:%Y%m%d}||{cvx}^vaccine^CVX|0.5|mL^mL^UCUM||00^New record^NIP001||||||{dose.lot}|{self.today.year + 2}1231|{dose.mvx}^maker^MVX|||CP|A"
                )
                segs.append("RXR|C28161^Intramuscular^NCIT|LA^Left Arm^HL70163")
                segs.append(
                    "OBX|1|CE|64994-7^Eligibility^LN|1|V02^Medicaid^HL70064||||||F|||"
                    + f"{when:%Y%m%d}|||VXC40^per immunization^CDCPHINVS"
                )
        text = "\r".join(segs) + "\r"
        return Submission(
            text,
            control,
            sender,
            person.person_id,
            mrn,
            [d.event_id for d in doses],
            bad,
        )

    def z44(
        self, person: Person, *, sender: str, mrn: str | None = None, limit: int = 5
    ) -> str:
        """A Z44 query for a person, by identifier when given, else demographics."""
        control = self.control_id()
        ids = f"{mrn}^^^{sender}^MR" if mrn else ""
        return (
            f"MSH|^~\\&|EHR|{sender}|CAIRN|CAIRN|{self.today:%Y%m%d}120000-0800||QBP^Q11^QBP_Q11|{control}|P|2.5.1|||ER|AL|||||Z44^CDCPHINVS\r"
            f"QPD|Z44^Request Evaluated History and Forecast^CDCPHINVS|Q{control}|{ids}|{person.family}^{person.given}^^^^^L|{person.mother_family}^{person.mother_given}^^^^^M|{person.birth_date:%Y%m%d}|{person.sex}\r"
            f"RCP|I|{limit}^RD&records&HL70126\r"
        )

    def traffic(
        self,
        count: int,
        *,
        senders: tuple[str, ...] = CLINICS,
        repeat_share: float = 0.3,
        duplicate_share: float = 0.05,
        bad_share: float = 0.02,
    ) -> Iterator[Submission]:
        """A stream of VXUs: new patients, repeat patients, resends and bad messages."""
        rng = self.rng
        known: list[tuple[Person, str, str]] = []
        last: Submission | None = None
        for _ in range(count):
            roll = rng.random()
            if last is not None and roll < duplicate_share:
                yield last  # a transport resend: same MSH-4 and MSH-10
                continue
            if known and roll < duplicate_share + repeat_share:
                person, sender, mrn = rng.choice(known)
            else:
                person = self.person()
                sender = rng.choice(senders)
                mrn = f"M{person.person_id:08d}"
                known.append((person, sender, mrn))
                if len(known) > 5000:
                    known.pop(0)
            bad = ""
            if rng.random() < bad_share:
                bad = rng.choice(("unknown-cvx", "future-date", "no-pid3"))
            last = self.vxu(
                person, self.doses_for(person), sender=sender, mrn=mrn, bad=bad
            )
            yield last


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.random()
    if kind < 0.33:
        return text[:i] + text[i + 1 :]
    if kind < 0.66:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + rng.choice("aeiourstn") + text[i + 1 :]


def _different(rng: random.Random, given: str, other: str, sex: str) -> str:
    names = GIVEN_F if sex == "F" else GIVEN_M
    while given == other:
        given = rng.choice(names)
    return given


def _other(rng: random.Random, names: list[str], avoid: str) -> str:
    name = avoid
    while name == avoid:
        name = rng.choice(names)
    return name
